// Package network owns container networking on the host: network namespaces
// kept as files, one Linux bridge per stack network, one veth pair per
// (container, network), address management (IPAM) persisted under berthd's
// state directory, and the /etc/hosts content that lets containers on a
// stack network reach each other by name.
//
// berth networks are ECU-internal: there is no NAT, no port mapping, no
// default route and no change to the host's firewall or ip_forward setting.
// A container reaches the containers that share one of its networks, and the
// host reaches it through the bridge's gateway address; nothing else.
//
// All links are made through netlink in one "host" network namespace, the
// daemon's own by default or the one given with [WithHostNS]. Several
// berthds may share a host namespace: each Manager has an instance identity
// ([InstanceID], derived from its state directory, or [WithInstance]) that
// goes into its link names ([BridgeName], [VethName]) and into the alias
// ("berth:<instance>") it sets on every host link it makes.
// [Manager.Cleanup] deletes only the leftover links marked as its own.
package network
