package devices

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/berth-io/berth/devices/internal/rpcerr"
	pb "github.com/berth-io/berth/devices/proto"
)

// PluginName is the name the base contract has in go-plugin's plugin set.
const PluginName = "base"

// GRPCPlugin is the go-plugin glue for the base contract: on the plugin
// side it serves Impl, on the host side it dispenses a [Plugin] that talks
// to it. Impl is nil on the host side.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Plugin
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the base contract's service on s.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBasePluginServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a [Plugin] speaking over c.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &client{c: pb.NewBasePluginClient(c)}, nil
}

// errTable maps the base contract's sentinels to gRPC codes.
var errTable = rpcerr.Table{
	{Err: ErrInvalidConfig, Reason: "INVALID_CONFIG", Code: codes.InvalidArgument},
	{Err: ErrNotConfigured, Reason: "NOT_CONFIGURED", Code: codes.FailedPrecondition},
	{Err: ErrUnknownDevice, Reason: "UNKNOWN_DEVICE", Code: codes.NotFound},
	{Err: ErrClosed, Reason: "CLOSED", Code: codes.FailedPrecondition},
	{Err: ErrUnsupportedContract, Reason: "UNSUPPORTED_CONTRACT", Code: codes.Unimplemented},
}
