package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.einride.tech/can/pkg/dbc"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/candump"
	"github.com/berth-io/berth/devices/can/canwire"
)

const canLong = `Watch, send and replay frames on the board's CAN buses, for debugging.

BUS is a board CAN device ("can0", as 'berth devices' lists it), not a
container's grant: berth opens it on berthd's operator CAN socket (beside
--host, "-can" added to its name), which receives every ID and may send any
ID, CAN FD and error frames included. Frames are written as can-utils
writes them: 123#DEADBEEF (standard ID), 12345678#00 (extended), 123#R4
(remote), 123##1AABB (CAN FD with flags: 1 BRS, 2 ESI).`

func newCANCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "can",
		Short: "Dump, send and replay CAN frames on a board bus",
		Long:  canLong,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCANDumpCommand(e), newCANSendCommand(e), newCANReplayCommand(e))
	return cmd
}

// openCAN opens bus on berthd's operator CAN socket. A socket nobody
// answers on is an *api.UnreachableError, as for the API.
func (e *env) openCAN(ctx context.Context, bus string, opts ...canwire.Option) (*canwire.Bus, error) {
	sock := api.CANSocket(e.host)
	b, err := canwire.OpenBus(ctx, sock, bus, append([]canwire.Option{canwire.WithoutRedial()}, opts...)...)
	if err != nil {
		var ce *canwire.Error
		if !errors.As(err, &ce) && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) ||
			errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) {
			return nil, &api.UnreachableError{Socket: sock, Err: err}
		}
		return nil, fmt.Errorf("open bus %s: %w", bus, err)
	}
	return b, nil
}

func newCANDumpCommand(e *env) *cobra.Command {
	var (
		count   int
		filters []string
		dbcPath string
	)
	cmd := &cobra.Command{
		Use:   "dump BUS [--count N] [--filter F]... [--dbc FILE]",
		Short: "Print the frames on a bus as candump -L does",
		Long: `Print every frame on BUS as 'candump -L' does, one line each, with the time
the bus received it and BUS as the interface:

  (1700000000.123456) can0 123#DEADBEEF

The output is a candump log: save it, and 'berth can replay' or can-utils'
canplayer plays it back. Ctrl-C ends the dump (exit code 0).

--filter selects IDs as a grant's receive list does: "0x7DF", a range
"0x100-0x1FF", id/mask "0x18DAF100/0x1FFFFF00", an "x" suffix for small
extended IDs ("0x123x"), "*". Several filters (repeated, or with commas)
select any ID one of them matches. Error frames are always printed.

--dbc decodes the frames a DBC file describes: each such frame's line is
followed by an indented line with the message and its signals, scaled, with
units and value names:

  (1700000000.000073) can0 100#B80B007A26000000
    ENGINE: EngineSpeed=750 rpm, ThrottlePosition=0 %, CoolantTemp=82 degC, EngineLoad=15.2 %, Counter=0
  (1700000000.002066) can0 120#0B98
    BRAKE: BrakePressure=18.5 bar, BrakePedal=pressed (1), ABSActive=0

A signal the frame is too short to carry shows as "-".`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if count < 0 {
				return usageError("--count %d: give a number of frames, or 0 for no limit", count)
			}
			fs, err := broker.ParseFilters(filters)
			if err != nil {
				return usageError("--filter: %v", err)
			}
			var db *dbcFile
			if dbcPath != "" {
				if db, err = loadDBC(dbcPath); err != nil {
					return err
				}
				for _, w := range db.warnings {
					fmt.Fprintf(e.Err, "berth: warning: %s\n", w)
				}
			}
			return e.dump(cmd.Context(), args[0], count, fs, db)
		}),
	}
	cmd.Flags().IntVarP(&count, "count", "n", 0, "stop after `N` frames (0: until Ctrl-C)")
	cmd.Flags().StringSliceVarP(&filters, "filter", "f", nil, "print only the IDs filter `F` selects (repeatable)")
	cmd.Flags().StringVar(&dbcPath, "dbc", "", "decode messages with this DBC `FILE`")
	return cmd
}

// dump prints the frames of bus until ctx ends or count frames are printed.
func (e *env) dump(ctx context.Context, name string, count int, fs broker.Filters, db *dbcFile) error {
	// Session events (the plugin restarting) come from the client's reader
	// goroutine, which must not block: they are queued and printed here.
	events := make(chan error, 16)
	bus, err := e.openCAN(ctx, name, canwire.WithErrorHandler(func(err error) {
		select {
		case events <- err:
		default:
		}
	}))
	if err != nil {
		return err
	}
	defer bus.Close()
	stream, err := bus.Receive(ctx)
	if err != nil {
		return fmt.Errorf("dump %s: %w", name, err)
	}
	stop := make(chan struct{})
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for {
			select {
			case err := <-events:
				fmt.Fprintf(e.Err, "berth: %s: %v\n", name, err)
			case <-stop:
				for {
					select {
					case err := <-events:
						fmt.Fprintf(e.Err, "berth: %s: %v\n", name, err)
					default:
						return
					}
				}
			}
		}
	}()
	defer func() { close(stop); <-printed }()

	out := bufio.NewWriter(e.Out)
	n := 0
	for {
		frames, err := stream.Recv()
		if err != nil {
			if ferr := out.Flush(); ferr != nil {
				return ferr
			}
			if ctx.Err() != nil {
				e.warnDrops(bus, name)
				return nil
			}
			if errors.Is(err, can.ErrClosed) {
				return fmt.Errorf("dump %s: berthd ended the session (%v): is berthd still running?", name, err)
			}
			return fmt.Errorf("dump %s: %w", name, err)
		}
		for _, f := range frames {
			if len(fs) > 0 && !f.Error && !fs.Match(f.ID, f.Extended) {
				continue
			}
			if f.Timestamp.IsZero() {
				f.Timestamp = e.now()
			}
			out.WriteString(candump.Record{Interface: name, Frame: f}.String())
			out.WriteByte('\n')
			if db != nil {
				if line := db.decode(f); line != "" {
					out.WriteString(line)
					out.WriteByte('\n')
				}
			}
			n++
			if count > 0 && n == count {
				if err := out.Flush(); err != nil {
					return err
				}
				e.warnDrops(bus, name)
				return nil
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// warnDrops says on stderr when frames were lost because the dump read
// too slowly.
func (e *env) warnDrops(bus can.Bus, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := bus.Counters(ctx)
	if err == nil && c.Drops > 0 {
		fmt.Fprintf(e.Err, "berth: %s: %s dropped because the dump fell behind; --filter prints fewer\n", name, frameCount(int(c.Drops)))
	}
}

func newCANSendCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "send BUS FRAME...",
		Short: "Send frames on a bus, as cansend does",
		Long: `Send each FRAME on BUS, in order, as can-utils' cansend does:

  123#DEADBEEF         standard (11-bit) ID, 0-8 data bytes ("." between bytes is allowed)
  12345678#00          extended (29-bit) ID: 8 hex digits
  123#R  123#R4        remote frame, with the data length it requests
  123##1DEADBEEF       CAN FD: "##", a flags digit (0 none, 1 BRS, 2 ESI, 3 both),
                       then 0-8, 12, 16, 20, 24, 32, 48 or 64 data bytes

Every frame is checked before the first is sent. berth returns once berthd
has handed each frame to the bus.`,
		Args: cobra.MinimumNArgs(2),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			name, texts := args[0], args[1:]
			frames := make([]can.Frame, len(texts))
			var bad []string
			for i, s := range texts {
				f, err := candump.ParseFrame(s)
				if err == nil && f.Error {
					err = fmt.Errorf("frame %q is an error frame: the controller reports error frames, they cannot be sent", s)
				}
				if err != nil {
					bad = append(bad, err.Error())
				}
				frames[i] = f
			}
			if len(bad) > 0 {
				// One "berth: " line per bad frame.
				return &exitError{code: ExitUsage, err: errors.New(strings.Join(bad, "\nberth: "))}
			}
			ctx := cmd.Context()
			bus, err := e.openCAN(ctx, name)
			if err != nil {
				return err
			}
			defer bus.Close()
			for i, f := range frames {
				if err := f.Validate(bus.Mode()); err != nil {
					return fmt.Errorf("frame %q: %w: %s runs %s; nothing was sent", texts[i], err, name, modeName(bus.Mode()))
				}
			}
			for i, f := range frames {
				if err := bus.Send(ctx, f); err != nil {
					return fmt.Errorf("send %s on %s: %w%s", texts[i], name, err, sentBefore(i))
				}
			}
			return nil
		}),
	}
}

// sentBefore says how many frames went out before a failure, when some did.
func sentBefore(sent int) string {
	if sent == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s sent before it)", frameCount(sent))
}

// frameCount says "1 frame" or "N frames".
func frameCount(n int) string {
	if n == 1 {
		return "1 frame"
	}
	return fmt.Sprintf("%d frames", n)
}

// modeName names a bus mode in a sentence: "can0 runs classical CAN".
func modeName(m can.Mode) string {
	if m == can.FD {
		return "CAN FD"
	}
	return "classical CAN"
}

func newCANReplayCommand(e *env) *cobra.Command {
	var (
		loops int
		speed float64
		iface string
	)
	cmd := &cobra.Command{
		Use:   "replay BUS FILE.log [--loop N] [--speed X] [--interface NAME]",
		Short: "Send the frames of a candump log on a bus, as canplayer does",
		Long: `Send the frames of FILE.log, a candump log ('candump -L' or '-l', or
'berth can dump'), on BUS with the time gaps between them that the log
records: the first frame at once, each later one as long after the first as
in the log, divided by --speed (2: twice as fast). Every frame of the file
goes to BUS, whichever interface it was logged on; --interface replays only
the lines of that interface.

The whole file is read and checked first: a line that is not a frame stops
the replay before anything is sent, with FILE:LINE:COL. Error frames in the
log are skipped (the controller reports them; they cannot be sent). Blank
lines, lines starting with "#" and candump's DROPCOUNT notes are ignored.
Ctrl-C stops the replay.`,
		Args: cobra.ExactArgs(2),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if loops < 0 {
				return usageError("--loop %d: give how many times to play the file, or 0 to repeat until Ctrl-C", loops)
			}
			if !(speed > 0) || math.IsInf(speed, 0) {
				return usageError("--speed %v: give a factor above 0 (1: as recorded, 2: twice as fast, 0.5: half as fast)", speed)
			}
			return e.replay(cmd.Context(), args[0], args[1], iface, loops, speed)
		}),
	}
	cmd.Flags().IntVarP(&loops, "loop", "l", 1, "play the file `N` times (0: until Ctrl-C)")
	cmd.Flags().Float64VarP(&speed, "speed", "s", 1, "play `X` times as fast as recorded")
	cmd.Flags().StringVarP(&iface, "interface", "i", "", "replay only the lines logged on interface `NAME`")
	return cmd
}

// logFrame is a frame of a log file and the line it is on.
type logFrame struct {
	line int
	f    can.Frame
}

// readLog reads the frames of the candump log at path that were logged on
// iface (every frame when iface is empty), and counts the error frames it
// leaves out.
func readLog(path, iface string) (frames []logFrame, errFrames, firstErr int, err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("replay: %w", err)
	}
	defer file.Close()
	r := candump.NewReader(file, path)
	seen := map[string]int{}
	for r.Scan() {
		rec := r.Record()
		seen[rec.Interface]++
		switch {
		case iface != "" && rec.Interface != iface:
		case rec.Frame.Error:
			if errFrames == 0 {
				firstErr = r.Line()
			}
			errFrames++
		default:
			frames = append(frames, logFrame{line: r.Line(), f: rec.Frame})
		}
	}
	if err := r.Err(); err != nil {
		return nil, 0, 0, err
	}
	switch {
	case len(seen) == 0:
		return nil, 0, 0, fmt.Errorf("%s holds no frames: a candump log has lines like (1700000000.123456) can0 123#DEADBEEF", path)
	case iface != "" && seen[iface] == 0:
		names := make([]string, 0, len(seen))
		for n, c := range seen {
			names = append(names, fmt.Sprintf("%s (%s)", n, frameCount(c)))
		}
		sort.Strings(names)
		return nil, 0, 0, fmt.Errorf("%s has no frames from interface %q; it has %s: pick one with --interface", path, iface, strings.Join(names, ", "))
	}
	return frames, errFrames, firstErr, nil
}

// replay sends the frames of the log at path on bus; see the command.
func (e *env) replay(ctx context.Context, name, path, iface string, loops int, speed float64) error {
	frames, errFrames, firstErr, err := readLog(path, iface)
	if err != nil {
		return err
	}
	if errFrames > 0 {
		what := "1 error frame"
		if errFrames > 1 {
			what = fmt.Sprintf("%d error frames", errFrames)
		}
		fmt.Fprintf(e.Err, "berth: %s:%d: skipping %s: the controller reports error frames, they cannot be sent\n", path, firstErr, what)
	}
	if len(frames) == 0 {
		return fmt.Errorf("%s has no frames to send", path)
	}
	bus, err := e.openCAN(ctx, name)
	if err != nil {
		return err
	}
	defer bus.Close()
	for _, lf := range frames {
		if err := lf.f.Validate(bus.Mode()); err != nil {
			return fmt.Errorf("%s:%d: frame %s: %w: %s runs %s; nothing was sent", path, lf.line, lf.f, err, name, modeName(bus.Mode()))
		}
	}

	start := time.Now()
	sent := 0
	finish := func(how string) error {
		fmt.Fprintf(e.Out, "%s %s from %s on %s in %s\n", how, frameCount(sent), path, name, time.Since(start).Round(time.Millisecond))
		return nil
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for loop := 0; loops == 0 || loop < loops; loop++ {
		begin, t0 := time.Now(), frames[0].f.Timestamp
		for _, lf := range frames {
			if gap := lf.f.Timestamp.Sub(t0); gap > 0 {
				if wait := time.Until(begin.Add(time.Duration(float64(gap) / speed))); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return finish("Stopped after")
					}
				}
			}
			f := lf.f
			f.Timestamp = time.Time{}
			if err := bus.Send(ctx, f); err != nil {
				if ctx.Err() != nil {
					return finish("Stopped after")
				}
				return fmt.Errorf("%s:%d: send %s on %s: %w%s", path, lf.line, f, name, err, sentBefore(sent))
			}
			sent++
		}
	}
	return finish("Replayed")
}

// dbcFile is a DBC file's messages, ready to decode frames.
type dbcFile struct {
	messages map[dbcKey]*dbcMessage
	// warnings are problems that do not stop decoding, with their place.
	warnings []string
}

// maxDBCMessage bounds the message sizes berth reads from a DBC file (the
// largest, J1939 transport protocol messages, are 1785 bytes).
const maxDBCMessage = 1 << 16

type dbcKey struct {
	id       uint32
	extended bool
}

type dbcMessage struct {
	name    string
	size    int
	signals []*dbcSignal
	mux     *dbcSignal // the multiplexer switch, if any
}

type dbcSignal struct {
	name      string
	start     int
	size      int
	bigEndian bool
	signed    bool
	float     int // 32 or 64 for IEEE floats (SIG_VALTYPE_), else 0
	factor    float64
	offset    float64
	unit      string
	decimals  int // digits after the point that factor and offset give
	lastByte  int // the last data byte the signal occupies
	muxed     bool
	muxValue  uint64
	values    map[int64]string // VAL_ descriptions of raw values
}

// loadDBC parses the DBC file at path. Errors say FILE:LINE:COL.
func loadDBC(path string) (db *dbcFile, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--dbc: %w", err)
	}
	p := dbc.NewParser(path, data)
	defer func() {
		// The parser panics on some malformed input it does not expect;
		// a DBC file is user input, so that is an error, not a crash.
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%s: the DBC parser failed (%v): check the file's syntax", path, r)
		}
	}()
	if perr := p.Parse(); perr != nil {
		return nil, fmt.Errorf("%s: %s: fix the DBC file (the format is Vector's DBC File Format Documentation)", perr.Position(), perr.Reason())
	}
	return compileDBC(p.Defs())
}

// compileDBC turns parsed definitions into messages to decode with.
func compileDBC(defs []dbc.Def) (*dbcFile, error) {
	db := &dbcFile{messages: map[dbcKey]*dbcMessage{}}
	where := map[dbcKey]string{}
	for _, def := range defs {
		md, ok := def.(*dbc.MessageDef)
		if !ok || md.MessageID == dbc.IndependentSignalsMessageID {
			continue
		}
		key := dbcKey{md.MessageID.ToCAN(), md.MessageID.IsExtended()}
		if first, dup := where[key]; dup {
			return nil, fmt.Errorf("%s: message %s has ID %s, as the message at %s has: give each message its own ID", md.Pos, md.Name, idText(key), first)
		}
		where[key] = md.Pos.String()
		m := &dbcMessage{name: string(md.Name), size: int(min(md.Size, maxDBCMessage))}
		for i := range md.Signals {
			sd := &md.Signals[i]
			s, err := newDBCSignal(sd, m)
			if err != nil {
				return nil, err
			}
			if s.lastByte >= can.MaxFDData {
				db.warnings = append(db.warnings, fmt.Sprintf("%s: signal %s of %s lies past byte 64, the end of the largest CAN frame: it is never decoded", sd.Pos, sd.Name, md.Name))
			}
			if sd.IsMultiplexerSwitch {
				m.mux = s
			}
			m.signals = append(m.signals, s)
		}
		db.messages[key] = m
	}
	for _, def := range defs {
		switch d := def.(type) {
		case *dbc.SignalValueTypeDef:
			if s := db.signal(d.MessageID, string(d.SignalName)); s != nil {
				switch d.SignalValueType {
				case dbc.SignalValueTypeFloat32:
					s.float = 32
				case dbc.SignalValueTypeFloat64:
					s.float = 64
				}
				if s.float != 0 && s.size != s.float {
					return nil, fmt.Errorf("%s: signal %s is a %d-bit float but %d bits long: make them agree", d.Pos, d.SignalName, s.float, s.size)
				}
			}
		case *dbc.ValueDescriptionsDef:
			if d.ObjectType != dbc.ObjectTypeSignal {
				continue
			}
			if s := db.signal(d.MessageID, string(d.SignalName)); s != nil {
				s.values = map[int64]string{}
				for _, vd := range d.ValueDescriptions {
					s.values[int64(vd.Value)] = vd.Description
				}
			}
		}
	}
	return db, nil
}

func (db *dbcFile) signal(id dbc.MessageID, name string) *dbcSignal {
	m := db.messages[dbcKey{id.ToCAN(), id.IsExtended()}]
	if m == nil {
		return nil
	}
	for _, s := range m.signals {
		if s.name == name {
			return s
		}
	}
	return nil
}

func idText(k dbcKey) string {
	if k.extended {
		return fmt.Sprintf("0x%X (extended)", k.id)
	}
	return fmt.Sprintf("0x%X", k.id)
}

func newDBCSignal(sd *dbc.SignalDef, m *dbcMessage) (*dbcSignal, error) {
	if sd.Size == 0 || sd.Size > 64 {
		return nil, fmt.Errorf("%s: signal %s is %d bits long: a signal has 1-64 bits", sd.Pos, sd.Name, sd.Size)
	}
	s := &dbcSignal{
		name: string(sd.Name), start: int(sd.StartBit), size: int(sd.Size),
		bigEndian: sd.IsBigEndian, signed: sd.IsSigned, factor: sd.Factor, offset: sd.Offset, unit: sd.Unit,
		decimals: max(fracDigits(sd.Factor), fracDigits(sd.Offset)),
		muxed:    sd.IsMultiplexed, muxValue: sd.MultiplexerSwitch,
	}
	if sd.StartBit >= 8*maxDBCMessage {
		return nil, fmt.Errorf("%s: signal %s starts at bit %d, past the end of message %s", sd.Pos, sd.Name, sd.StartBit, m.name)
	}
	if s.bigEndian {
		// Motorola order: the start bit is the most significant; the
		// next bits go down a byte, then on to bit 7 of the next byte.
		p := s.start
		for range s.size - 1 {
			if p%8 == 0 {
				p += 15
			} else {
				p--
			}
		}
		s.lastByte = p / 8
	} else {
		s.lastByte = (s.start + s.size - 1) / 8
	}
	if s.lastByte >= m.size {
		return nil, fmt.Errorf("%s: signal %s (start bit %d, %d bits) ends in byte %d, past the %d bytes of message %s: fix its start bit or length, or the message size",
			sd.Pos, sd.Name, s.start, s.size, s.lastByte, m.size, m.name)
	}
	return s, nil
}

// fracDigits is how many digits x has after the decimal point.
func fracDigits(x float64) int {
	t := strconv.FormatFloat(x, 'f', -1, 64)
	if i := strings.IndexByte(t, '.'); i >= 0 {
		return min(len(t)-i-1, 9)
	}
	return 0
}

// decode returns the indented human line for f ("  NAME: Sig=1.5 V, ..."),
// or "" when the file does not describe it.
func (db *dbcFile) decode(f can.Frame) string {
	if f.Error || f.Remote {
		return ""
	}
	m := db.messages[dbcKey{f.ID, f.Extended}]
	if m == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("  ")
	b.WriteString(m.name)
	if len(f.Data) < m.size {
		fmt.Fprintf(&b, " (%d of %d bytes)", len(f.Data), m.size)
	}
	b.WriteString(":")
	var mux uint64
	haveMux := false
	if m.mux != nil {
		mux, haveMux = m.mux.raw(f.Data)
	}
	first := true
	for _, s := range m.signals {
		if s.muxed && (!haveMux || mux != s.muxValue) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteByte(' ')
		b.WriteString(s.name)
		b.WriteByte('=')
		raw, ok := s.raw(f.Data)
		if !ok {
			b.WriteByte('-') // the frame is too short to carry it
			continue
		}
		b.WriteString(s.format(raw))
	}
	return b.String()
}

// raw extracts the signal's bits from data; false when data is too short.
func (s *dbcSignal) raw(data []byte) (uint64, bool) {
	if s.lastByte >= len(data) {
		return 0, false
	}
	bit := func(p int) uint64 { return uint64(data[p/8]>>(p%8)) & 1 }
	var v uint64
	if s.bigEndian {
		p := s.start
		for range s.size {
			v = v<<1 | bit(p)
			if p%8 == 0 {
				p += 15
			} else {
				p--
			}
		}
		return v, true
	}
	for i := s.size - 1; i >= 0; i-- {
		v = v<<1 | bit(s.start+i)
	}
	return v, true
}

// format writes a raw value as a person reads it: scaled, with its unit,
// or the DBC's name for it.
func (s *dbcSignal) format(raw uint64) string {
	n := int64(raw)
	if s.signed && s.size < 64 && raw&(1<<(s.size-1)) != 0 {
		n = int64(raw) - int64(1)<<s.size
	}
	if name, ok := s.values[n]; ok && s.float == 0 {
		return fmt.Sprintf("%s (%d)", name, n)
	}
	var text string
	switch {
	case s.float == 32 && s.factor == 1 && s.offset == 0:
		text = strconv.FormatFloat(float64(math.Float32frombits(uint32(raw))), 'g', -1, 32)
	case s.float == 32:
		text = strconv.FormatFloat(float64(math.Float32frombits(uint32(raw)))*s.factor+s.offset, 'g', -1, 64)
	case s.float == 64:
		text = strconv.FormatFloat(math.Float64frombits(raw)*s.factor+s.offset, 'g', -1, 64)
	case s.factor == 1 && s.offset == 0 && s.signed:
		text = strconv.FormatInt(n, 10)
	case s.factor == 1 && s.offset == 0:
		text = strconv.FormatUint(raw, 10)
	case s.signed:
		text = trimZeros(strconv.FormatFloat(float64(n)*s.factor+s.offset, 'f', s.decimals, 64))
	default:
		text = trimZeros(strconv.FormatFloat(float64(raw)*s.factor+s.offset, 'f', s.decimals, 64))
	}
	if s.unit != "" {
		text += " " + s.unit
	}
	return text
}

// trimZeros drops the trailing zeros of a fraction ("40.00" gives "40",
// "12.50" gives "12.5").
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}
