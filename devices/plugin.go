package devices

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/berth-io/berth/devices/internal/rpcerr"
	pb "github.com/berth-io/berth/devices/proto"
)

// PluginName is the name the base contract has in go-plugin's plugin set.
const PluginName = "base"

// RegisterServer registers the base contract's gRPC service on s, served
// by impl: the plugin side. devices/sdk wires it into go-plugin; this
// package does not depend on go-plugin, so programs that only use the
// contract's types do not carry it.
func RegisterServer(s grpc.ServiceRegistrar, impl Plugin) {
	pb.RegisterBasePluginServer(s, &server{impl: impl})
}

// NewClient returns a [Plugin] that speaks the base contract over c: the
// host side.
func NewClient(c grpc.ClientConnInterface) Plugin {
	return &client{c: pb.NewBasePluginClient(c)}
}

// errTable maps the base contract's sentinels to gRPC codes.
var errTable = rpcerr.Table{
	{Err: ErrInvalidConfig, Reason: "INVALID_CONFIG", Code: codes.InvalidArgument},
	{Err: ErrNotConfigured, Reason: "NOT_CONFIGURED", Code: codes.FailedPrecondition},
	{Err: ErrUnknownDevice, Reason: "UNKNOWN_DEVICE", Code: codes.NotFound},
	{Err: ErrClosed, Reason: "CLOSED", Code: codes.FailedPrecondition},
	{Err: ErrUnsupportedContract, Reason: "UNSUPPORTED_CONTRACT", Code: codes.Unimplemented},
}
