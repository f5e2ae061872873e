package api

//go:generate ./generate.sh

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/berth-io/berth/core/api/v1"
)

// This file translates between the Go types of backend.go and the wire
// types of apiv1; nothing else in the package touches both.

func tsToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tsFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func applyToProto(r ApplyRequest) *apiv1.ApplyRequest {
	return &apiv1.ApplyRequest{File: r.File, Source: r.Source, Vars: r.Vars}
}

func applyFromProto(r *apiv1.ApplyRequest) ApplyRequest {
	return ApplyRequest{File: r.GetFile(), Source: r.GetSource(), Vars: r.GetVars()}
}

func planToProto(p *Plan) *apiv1.Plan {
	if p == nil {
		return &apiv1.Plan{}
	}
	out := &apiv1.Plan{Stack: p.Stack}
	for _, a := range p.Actions {
		out.Actions = append(out.Actions, &apiv1.Action{Container: a.Container, Kind: string(a.Kind), Reason: a.Reason})
	}
	return out
}

func planFromProto(p *apiv1.Plan) *Plan {
	out := &Plan{Stack: p.GetStack()}
	for _, a := range p.GetActions() {
		out.Actions = append(out.Actions, Action{Container: a.GetContainer(), Kind: ActionKind(a.GetKind()), Reason: a.GetReason()})
	}
	return out
}

func eventToProto(e Event) *apiv1.Event {
	return &apiv1.Event{Time: tsToProto(e.Time), Container: e.Container, Message: e.Message}
}

func eventFromProto(e *apiv1.Event) Event {
	return Event{Time: tsFromProto(e.GetTime()), Container: e.GetContainer(), Message: e.GetMessage()}
}

func containerToProto(c ContainerStatus) *apiv1.ContainerStatus {
	return &apiv1.ContainerStatus{
		Stack:      c.Stack,
		Name:       c.Name,
		Images:     c.Images,
		State:      c.State,
		Health:     c.Health,
		Pid:        int64(c.PID),
		StartedAt:  tsToProto(c.StartedAt),
		FinishedAt: tsToProto(c.FinishedAt),
		ExitCode:   int32(c.ExitCode),
		Restarts:   int32(c.Restarts),
		Networks:   c.Networks,
		Message:    c.Message,
	}
}

func containerFromProto(c *apiv1.ContainerStatus) ContainerStatus {
	return ContainerStatus{
		Stack:      c.GetStack(),
		Name:       c.GetName(),
		Images:     c.GetImages(),
		State:      c.GetState(),
		Health:     c.GetHealth(),
		PID:        int(c.GetPid()),
		StartedAt:  tsFromProto(c.GetStartedAt()),
		FinishedAt: tsFromProto(c.GetFinishedAt()),
		ExitCode:   int(c.GetExitCode()),
		Restarts:   int(c.GetRestarts()),
		Networks:   c.GetNetworks(),
		Message:    c.GetMessage(),
	}
}

func logLineToProto(l LogLine) *apiv1.LogLine {
	return &apiv1.LogLine{Time: tsToProto(l.Time), Stream: l.Stream, Text: l.Text}
}

func logLineFromProto(l *apiv1.LogLine) LogLine {
	return LogLine{Time: tsFromProto(l.GetTime()), Stream: l.GetStream(), Text: l.GetText()}
}

func imagesToProto(imgs []Image) []*apiv1.Image {
	out := make([]*apiv1.Image, 0, len(imgs))
	for _, i := range imgs {
		out = append(out, &apiv1.Image{Ref: i.Ref, Digest: i.Digest, Size: i.Size, Created: tsToProto(i.Created)})
	}
	return out
}

func imagesFromProto(imgs []*apiv1.Image) []Image {
	out := make([]Image, 0, len(imgs))
	for _, i := range imgs {
		out = append(out, Image{Ref: i.GetRef(), Digest: i.GetDigest(), Size: i.GetSize(), Created: tsFromProto(i.GetCreated())})
	}
	return out
}

func diagnosticsToProto(diags hcl.Diagnostics) *apiv1.Diagnostics {
	out := &apiv1.Diagnostics{}
	for _, d := range diags {
		if d == nil {
			continue
		}
		pd := &apiv1.Diagnostic{
			Summary: d.Summary,
			Detail:  d.Detail,
			Subject: rangeToProto(d.Subject),
			Context: rangeToProto(d.Context),
		}
		switch d.Severity {
		case hcl.DiagError:
			pd.Severity = apiv1.Diagnostic_SEVERITY_ERROR
		case hcl.DiagWarning:
			pd.Severity = apiv1.Diagnostic_SEVERITY_WARNING
		}
		out.Diagnostics = append(out.Diagnostics, pd)
	}
	return out
}

func diagnosticsFromProto(pd *apiv1.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range pd.GetDiagnostics() {
		sev := hcl.DiagError // an unknown severity is an error, never dropped
		if d.GetSeverity() == apiv1.Diagnostic_SEVERITY_WARNING {
			sev = hcl.DiagWarning
		}
		out = append(out, &hcl.Diagnostic{
			Severity: sev,
			Summary:  d.GetSummary(),
			Detail:   d.GetDetail(),
			Subject:  rangeFromProto(d.GetSubject()),
			Context:  rangeFromProto(d.GetContext()),
		})
	}
	return out
}

func rangeToProto(r *hcl.Range) *apiv1.Range {
	if r == nil {
		return nil
	}
	return &apiv1.Range{
		Filename: r.Filename,
		Start:    &apiv1.Pos{Line: int64(r.Start.Line), Column: int64(r.Start.Column), Byte: int64(r.Start.Byte)},
		End:      &apiv1.Pos{Line: int64(r.End.Line), Column: int64(r.End.Column), Byte: int64(r.End.Byte)},
	}
}

func rangeFromProto(r *apiv1.Range) *hcl.Range {
	if r == nil {
		return nil
	}
	pos := func(p *apiv1.Pos) hcl.Pos {
		return hcl.Pos{Line: int(p.GetLine()), Column: int(p.GetColumn()), Byte: int(p.GetByte())}
	}
	return &hcl.Range{Filename: r.GetFilename(), Start: pos(r.GetStart()), End: pos(r.GetEnd())}
}

func devicesToProto(ds Devices) *apiv1.DevicesResponse {
	out := &apiv1.DevicesResponse{HasBoard: ds.Board != "", Board: ds.Board}
	for _, d := range ds.Devices {
		pd := &apiv1.Device{
			Name: d.Name, Class: d.Class, Plugin: d.Plugin, Id: d.ID,
			Available: d.Available, Health: d.Health, Reason: d.Reason, Restarts: int32(d.Restarts),
			Attributes: d.Attributes, Counters: d.Counters,
		}
		for _, s := range d.Sessions {
			pd.Sessions = append(pd.Sessions, &apiv1.DeviceSession{
				Container: s.Container, Grant: s.Grant, Open: uint32(s.Open),
				Received: s.Received, Delivered: s.Delivered, Dropped: s.Dropped,
				Sent: s.Sent, Refused: s.Refused, RateLimited: s.RateLimited,
			})
		}
		out.Devices = append(out.Devices, pd)
	}
	return out
}

func devicesFromProto(r *apiv1.DevicesResponse) Devices {
	out := Devices{Board: r.GetBoard()}
	for _, d := range r.GetDevices() {
		dev := Device{
			Name: d.GetName(), Class: d.GetClass(), Plugin: d.GetPlugin(), ID: d.GetId(),
			Available: d.GetAvailable(), Health: d.GetHealth(), Reason: d.GetReason(), Restarts: int(d.GetRestarts()),
			Attributes: d.GetAttributes(), Counters: d.GetCounters(),
		}
		for _, s := range d.GetSessions() {
			dev.Sessions = append(dev.Sessions, DeviceSession{
				Container: s.GetContainer(), Grant: s.GetGrant(), Open: int(s.GetOpen()),
				Received: s.GetReceived(), Delivered: s.GetDelivered(), Dropped: s.GetDropped(),
				Sent: s.GetSent(), Refused: s.GetRefused(), RateLimited: s.GetRateLimited(),
			})
		}
		out.Devices = append(out.Devices, dev)
	}
	return out
}
