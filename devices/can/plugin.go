package can

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/berth-io/berth/devices"
	pb "github.com/berth-io/berth/devices/can/proto"
	"github.com/berth-io/berth/devices/internal/rpcerr"
)

// PluginName is the CAN class's name in go-plugin's plugin set.
const PluginName = string(devices.ClassCAN)

// RegisterServer registers the CAN class's gRPC service on s, served by
// impl: the plugin side (devices/sdk wires it into go-plugin).
func RegisterServer(s grpc.ServiceRegistrar, impl Driver) {
	pb.RegisterCANServer(s, newServer(impl))
}

// NewClient returns a [Driver] that speaks the CAN class over c: the host
// side.
func NewClient(c grpc.ClientConnInterface) Driver {
	return &client{c: pb.NewCANClient(c)}
}

// errTable maps the CAN sentinels to gRPC codes: InvalidArgument for a
// malformed frame, as the broker reports it to containers.
var errTable = rpcerr.Table{
	{Err: ErrInvalidID, Reason: "INVALID_ID", Code: codes.InvalidArgument},
	{Err: ErrInvalidLength, Reason: "INVALID_LENGTH", Code: codes.InvalidArgument},
	{Err: ErrInvalidFlags, Reason: "INVALID_FLAGS", Code: codes.InvalidArgument},
	{Err: ErrFDOnClassicalBus, Reason: "FD_ON_CLASSICAL_BUS", Code: codes.InvalidArgument},
	{Err: ErrInvalidFrame, Reason: "INVALID_FRAME", Code: codes.InvalidArgument},
	{Err: ErrBusOff, Reason: "BUS_OFF", Code: codes.FailedPrecondition},
	{Err: ErrBusStopped, Reason: "BUS_STOPPED", Code: codes.FailedPrecondition},
	{Err: ErrUnknownDevice, Reason: "UNKNOWN_DEVICE", Code: codes.NotFound},
	{Err: ErrClosed, Reason: "CLOSED", Code: codes.FailedPrecondition},
}

// Wire flag bits of pb.Frame.Flags.
const (
	flagExtended = 1 << iota
	flagRemote
	flagError
	flagFD
	flagBRS
	flagESI
)

func frameToProto(f Frame) *pb.Frame {
	var flags uint32
	for _, b := range []struct {
		set  bool
		flag uint32
	}{{f.Extended, flagExtended}, {f.Remote, flagRemote}, {f.Error, flagError}, {f.FD, flagFD}, {f.BRS, flagBRS}, {f.ESI, flagESI}} {
		if b.set {
			flags |= b.flag
		}
	}
	p := &pb.Frame{Id: f.ID, Flags: flags, Data: f.Data}
	if f.Remote {
		p.Length = uint32(f.RemoteLen)
	}
	if !f.Timestamp.IsZero() {
		p.TimestampUnixNano = f.Timestamp.UnixNano()
	}
	return p
}

func frameFromProto(p *pb.Frame) Frame {
	flags := p.GetFlags()
	f := Frame{
		ID:       p.GetId(),
		Extended: flags&flagExtended != 0,
		Remote:   flags&flagRemote != 0,
		Error:    flags&flagError != 0,
		FD:       flags&flagFD != 0,
		BRS:      flags&flagBRS != 0,
		ESI:      flags&flagESI != 0,
	}
	if len(p.GetData()) > 0 {
		f.Data = p.GetData()
	}
	if f.Remote {
		f.RemoteLen = uint8(min(p.GetLength(), 255))
	}
	if ns := p.GetTimestampUnixNano(); ns != 0 {
		f.Timestamp = unixNano(ns)
	}
	return f
}

func stateToProto(s State) pb.State {
	switch s {
	case StateErrorActive:
		return pb.State_STATE_ERROR_ACTIVE
	case StateErrorPassive:
		return pb.State_STATE_ERROR_PASSIVE
	case StateBusOff:
		return pb.State_STATE_BUS_OFF
	case StateStopped:
		return pb.State_STATE_STOPPED
	}
	return pb.State_STATE_UNSPECIFIED
}

func stateFromProto(s pb.State) State {
	switch s {
	case pb.State_STATE_ERROR_ACTIVE:
		return StateErrorActive
	case pb.State_STATE_ERROR_PASSIVE:
		return StateErrorPassive
	case pb.State_STATE_BUS_OFF:
		return StateBusOff
	case pb.State_STATE_STOPPED:
		return StateStopped
	}
	return StateUnknown
}
