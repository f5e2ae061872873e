// Package cannative owns berth's native CAN fast path in the kernel: it
// serves a container's CAN grant as a real SocketCAN interface inside the
// container's network namespace, so unmodified SocketCAN programs
// (candump, cansend, python-can) work with no userspace hop.
//
// Each grant gets a vxcan pair (Attach): the peer, named after the grant
// (`can "body"` gives the container an interface body; Attachment.IfName
// overrides it), sits in the container's namespace; the host end ("bc-"
// and a hash, see HostName) stays beside the bus. The grant is compiled
// (Compile) into can-gw rules between the bus and the host end: rules from
// the bus to the container for the receive filters (and the error frames,
// with Grant.ErrorFrames), rules from the container to the bus for the
// send filters, so a frame with an ungranted ID sent inside never reaches
// the bus. Filters become disjoint kernel id/mask pairs (a range the
// fewest aligned blocks that cover it exactly), so no frame crosses
// twice; CAN FD frames cross only on an FD grant on an FD bus. The kernel
// cannot enforce a send rate: such a grant is refused (ErrNotNative) and
// belongs to the broker path.
//
// Frames a container sends are echoed on the bus to its local sockets and
// rules, as a socket's own sends are, so the host's SocketCAN users and
// the other containers hear them. That second can-gw hop needs can-gw's
// max_hops module parameter at MinHops or more (the kernel's default is
// 1); Supported checks it with vxcan and can-gw. A container does not
// hear its own frames back: both ends of its pair get one interface index,
// and can-gw does not send a frame back to the index it was sent on (see
// createPair). As on any virtual CAN interface, frames one program sends
// from two CPUs may overtake each other.
//
// vishvananda/netlink knows neither vxcan nor can-gw; this package builds
// those rtnetlink messages with its nl package (vxcan.go, gw.go).
//
// Ownership: every host end is marked with the alias "berth:<instance>",
// the convention core/network uses for its links, so Cleanup deletes the
// leftovers of one berthd instance after a crash and nothing else, and
// Adopt takes over the link of a container that still runs.
// Deleting a vxcan end deletes its peer, and the kernel drops every can-gw
// rule naming a deleted interface, so closing a Link, or deleting the
// container's namespace, leaves no interface and no rule.
package cannative
