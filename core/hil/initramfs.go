package hil

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ModuleParams are the parameters the guest passes to insmod per module:
// the I2C stub gets one chip at 0x48, which the I2C tests use; can-gw lets a
// frame take two hops, so a frame one container sends through the native CAN
// path reaches the others (core/cannative.MinHops).
func ModuleParams() map[string]string {
	return map[string]string{"i2c_stub": "chip_addr=0x48", "can_gw": "max_hops=2"}
}

// GuestEnv is set in the environment of the test binary in the guest, so a
// test can tell that it runs in the HIL VM (and must not skip for lack of a
// kernel feature the VM provides).
const GuestEnv = "BERTH_HIL"

// OutputTTY is the guest serial port that carries the test's output and
// exit status; the kernel console is on ttyS0.
const OutputTTY = "/dev/ttyS1"

// GuestPath is PATH in the guest: the payload's own programs (BinDir),
// then the host tools' dirs, then busybox's applets in /bin.
const GuestPath = "/" + BinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initScript is /init of the base initramfs, stage one. runc's
// pivot_root fails while the root is the initramfs's own mount (rootfs,
// which has no parent mount); a bind mount of it, moved onto /, is an
// ordinary mount with the same files. So stage one chroots into such a
// bind mount, with nothing copied, and runs stage two, stage2Script.
const initScript = `#!/bin/busybox sh
# berth HIL guest init, stage 1, written by github.com/berth-io/berth/core/hil.
bb=/bin/busybox
$bb mkdir -p /.root
$bb mount --bind / /.root || { echo "berth-hil: bind-mount the root failed"; exit 1; }
cd /.root && $bb mount --move . / || { echo "berth-hil: move the root's bind mount onto / failed"; exit 1; }
exec $bb chroot . ` + stage2Path + `
`

// stage2Path is where stage two of the guest's init lives.
const stage2Path = "/etc/berth-hil/init"

// stage2Script prepares the guest, loads the modules listed in
// /etc/berth-hil/modules in order, runs /hil/run (from the per-test
// payload archive) and powers off.
const stage2Script = `#!/bin/busybox sh
# berth HIL guest init, stage 2, written by github.com/berth-io/berth/core/hil.
/bin/busybox --install -s /bin
export PATH=` + GuestPath + ` HOME=/root TMPDIR=/tmp ` + GuestEnv + `=1
mkdir -p /proc /sys /dev /tmp /run /root /var/lib /etc
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
ln -sf /proc/self/fd /dev/fd
ln -sf fd/0 /dev/stdin
ln -sf fd/1 /dev/stdout
ln -sf fd/2 /dev/stderr
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
while read -r mod params; do
	insmod "/lib/modules/$mod.ko" $params || echo "berth-hil: insmod $mod failed"
done < /etc/berth-hil/modules
ip link set lo up
hostname berth-hil
stty -F ` + OutputTTY + ` raw -echo
echo "berth-hil: guest ready after $(cut -d' ' -f1 /proc/uptime) s"
if [ -x /hil/run ]; then /hil/run; else echo "berth-hil: no /hil/run in the initramfs"; fi
echo "berth-hil: test done after $(cut -d' ' -f1 /proc/uptime) s"
sync
poweroff -f
`

// BuildBase returns the path of the base initramfs for k: busybox (a
// static build, read from busybox), the two stages of init, k's modules,
// and files (host programs with their libraries, see ToolFiles). It is
// built once per content and cached in k.Dir, keyed by the scripts, the
// modules and each file's name, source, size and modification time, so it
// is rebuilt when a file or the set of files changes; later calls return
// the cached file. Cached bases unused for a week are removed.
func BuildBase(k *Kernel, busybox string, files []File) (string, error) {
	path, err := buildBase(k, busybox, files)
	if err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	return path, nil
}

// baseUnusedFor is how long a cached base initramfs may go unused before
// BuildBase removes it.
const baseUnusedFor = 7 * 24 * time.Hour

func buildBase(k *Kernel, busybox string, files []File) (string, error) {
	params := ModuleParams()
	var list strings.Builder
	for _, m := range k.Modules {
		fmt.Fprintf(&list, "%s %s\n", m.Name, params[m.Name])
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", initScript, stage2Script, list.String())
	for _, f := range append([]File{{Name: "bin/busybox", Src: busybox}}, files...) {
		st, err := os.Stat(f.Src)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00", f.Name, f.Src, st.Size(), st.ModTime().UnixNano())
	}
	path := filepath.Join(k.Dir, "base-"+hex.EncodeToString(h.Sum(nil)[:6])+".cpio")
	now := time.Now()
	if err := os.Chtimes(path, now, now); err == nil {
		return path, nil // cached; the new mtime marks it used
	}
	pruneBases(k.Dir, now)

	f, err := os.CreateTemp(k.Dir, ".base-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	c := NewCPIOWriter(w)
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "run", "root", "etc/berth-hil", "lib/modules"} {
		if err := c.Dir(d, 0o755); err != nil {
			return "", err
		}
	}
	steps := []func() error{
		func() error { return c.CharDev("dev/console", 0o600, 5, 1) },
		func() error { return addFile(c, "bin/busybox", busybox) },
		func() error { return c.Symlink("bin/sh", "busybox") },
		func() error { return c.Bytes("init", 0o755, []byte(initScript)) },
		func() error { return c.Bytes(stage2Path, 0o755, []byte(stage2Script)) },
		func() error { return c.Bytes("etc/berth-hil/modules", 0o644, []byte(list.String())) },
	}
	for _, m := range k.Modules {
		steps = append(steps, func() error { return addFile(c, "lib/modules/"+m.Name+".ko", k.ModuleFile(m)) })
	}
	steps = append(steps, func() error { return addFiles(c, files) }, c.Close, w.Flush, f.Close)
	for _, step := range steps {
		if err := step(); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// pruneBases removes the cached base initramfs files in dir unused (not
// modified) since baseUnusedFor before now. Failures are ignored: a stale
// file only costs disk space.
func pruneBases(dir string, now time.Time) {
	old, _ := filepath.Glob(filepath.Join(dir, "base-*.cpio"))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && now.Sub(st.ModTime()) > baseUnusedFor {
			_ = os.Remove(p)
		}
	}
}

// Payload is what one VM run executes: a static test binary with its
// arguments, run in PkgDir holding a copy of Testdata (if set) as
// ./testdata, as go test runs a test binary in its package directory; and
// Files, more host files for the test (see Manifest.Resolve), each at its
// Name in the guest.
type Payload struct {
	Binary   string
	Args     []string
	Testdata string
	Files    []File
}

// Where the payload lives in the guest: the test binary's directory (its
// working directory), and the directory of the programs a manifest builds,
// which is first in GuestPath.
const (
	PkgDir = "hil/pkg"
	BinDir = "hil/bin"
)

// WritePayload writes p as a cpio archive to w: the binary, the testdata
// tree, p.Files and /hil/run, a script that runs the binary with its
// output on OutputTTY and then writes marker followed by the exit status
// and a newline there.
func WritePayload(w io.Writer, p Payload, marker string) error {
	if err := writePayload(w, p, marker); err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	return nil
}

func writePayload(w io.Writer, p Payload, marker string) error {
	c := NewCPIOWriter(w)
	name := filepath.Base(p.Binary)
	if err := addFile(c, PkgDir+"/"+name, p.Binary); err != nil {
		return err
	}
	if p.Testdata != "" {
		if err := addTree(c, PkgDir+"/testdata", p.Testdata); err != nil {
			return err
		}
	}
	if err := addFiles(c, p.Files); err != nil {
		return err
	}
	var run strings.Builder
	run.WriteString("#!/bin/sh\ncd /" + PkgDir + " || exit 1\n")
	run.WriteString(shellQuote("./" + name))
	for _, a := range p.Args {
		run.WriteString(" " + shellQuote(a))
	}
	fmt.Fprintf(&run, " </dev/null >%s 2>&1\nprintf '%%s%%d\\n' %s \"$?\" >%s\n", OutputTTY, shellQuote(marker), OutputTTY)
	if err := c.Bytes("hil/run", 0o755, []byte(run.String())); err != nil {
		return err
	}
	return c.Close()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// addFiles adds each file, or directory tree, at its guest name.
func addFiles(c *CPIOWriter, files []File) error {
	for _, f := range files {
		st, err := os.Stat(f.Src)
		if err != nil {
			return err
		}
		if st.IsDir() {
			var dir string
			if dir, err = filepath.EvalSymlinks(f.Src); err == nil {
				err = addTree(c, f.Name, dir)
			}
		} else {
			err = addFile(c, f.Name, f.Src)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addFile adds the regular file src (symlinks followed) with its
// permission bits.
func addFile(c *CPIOWriter, name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	return c.File(name, st.Mode().Perm(), st.Size(), f)
}

// addTree copies the directory tree at src (regular files, directories and
// symlinks; other kinds are skipped) into the archive under name.
func addTree(c *CPIOWriter, name, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.ToSlash(filepath.Join(name, rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return c.Dir(dst, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return c.Symlink(dst, target)
		case d.Type().IsRegular():
			return addFile(c, dst, p)
		}
		return nil
	})
}
