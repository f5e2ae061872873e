package hil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ModuleParams are the parameters the guest passes to insmod per module:
// the I2C stub gets one chip at 0x48, which the I2C tests use.
func ModuleParams() map[string]string {
	return map[string]string{"i2c_stub": "chip_addr=0x48"}
}

// GuestEnv is set in the environment of the test binary in the guest, so a
// test can tell that it runs in the HIL VM (and must not skip for lack of a
// kernel feature the VM provides).
const GuestEnv = "BERTH_HIL"

// OutputTTY is the guest serial port that carries the test's output and
// exit status; the kernel console is on ttyS0.
const OutputTTY = "/dev/ttyS1"

// initScript is /init of the base initramfs. It prepares the guest, loads
// the modules listed in /etc/berth-hil/modules in order, runs /hil/run (from
// the per-test payload archive) and powers off.
const initScript = `#!/bin/busybox sh
# berth HIL guest init, written by github.com/berth-io/berth/core/hil.
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root TMPDIR=/tmp ` + GuestEnv + `=1
mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
while read -r mod params; do
	insmod "/lib/modules/$mod.ko" $params || echo "berth-hil: insmod $mod failed"
done < /etc/berth-hil/modules
ip link set lo up
hostname berth-hil
stty -F ` + OutputTTY + ` raw -echo
if [ -x /hil/run ]; then /hil/run; else echo "berth-hil: no /hil/run in the initramfs"; fi
sync
poweroff -f
`

// BuildBase returns the path of the base initramfs for k: busybox (a
// static build, read from busybox), /init, and k's modules. It is built
// once per content and cached in k.Dir; later calls return the cached file.
func BuildBase(k *Kernel, busybox string) (string, error) {
	params := ModuleParams()
	var list strings.Builder
	for _, m := range k.Modules {
		fmt.Fprintf(&list, "%s %s\n", m.Name, params[m.Name])
	}
	st, err := os.Stat(busybox)
	if err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	key := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d\x00%d",
		initScript, list.String(), busybox, st.Size(), st.ModTime().UnixNano()))
	path := filepath.Join(k.Dir, "base-"+hex.EncodeToString(key[:6])+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}

	f, err := os.CreateTemp(k.Dir, ".base-")
	if err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	c := NewCPIOWriter(f)
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "run", "root", "etc/berth-hil", "lib/modules"} {
		if err := c.Dir(d, 0o755); err != nil {
			return "", fmt.Errorf("build initramfs: %w", err)
		}
	}
	if err := c.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	if err := addFile(c, "bin/busybox", busybox, 0o755); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	if err := c.Symlink("bin/sh", "busybox"); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	if err := c.Bytes("init", 0o755, []byte(initScript)); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	if err := c.Bytes("etc/berth-hil/modules", 0o644, []byte(list.String())); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	for _, m := range k.Modules {
		if err := addFile(c, "lib/modules/"+m.Name+".ko", k.ModuleFile(m), 0o644); err != nil {
			return "", fmt.Errorf("build initramfs: %w", err)
		}
	}
	if err := c.Close(); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	return path, nil
}

// Payload is what one VM run executes: a static test binary with its
// arguments, run in a directory holding a copy of Testdata (if set) as
// ./testdata, as go test runs a test binary in its package directory.
type Payload struct {
	Binary   string
	Args     []string
	Testdata string
}

// payloadDir is where the payload lives in the guest.
const payloadDir = "hil/pkg"

// WritePayload writes p as a cpio archive to w: the binary, the testdata
// tree and /hil/run, a script that runs the binary with its output on
// OutputTTY and then writes marker followed by the exit status and a
// newline there.
func WritePayload(w io.Writer, p Payload, marker string) error {
	c := NewCPIOWriter(w)
	name := filepath.Base(p.Binary)
	if err := addFile(c, payloadDir+"/"+name, p.Binary, 0o755); err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	if p.Testdata != "" {
		if err := addTree(c, payloadDir+"/testdata", p.Testdata); err != nil {
			return fmt.Errorf("write payload: %w", err)
		}
	}
	var run strings.Builder
	run.WriteString("#!/bin/sh\ncd /" + payloadDir + " || exit 1\n")
	run.WriteString(shellQuote("./" + name))
	for _, a := range p.Args {
		run.WriteString(" " + shellQuote(a))
	}
	fmt.Fprintf(&run, " </dev/null >%s 2>&1\nprintf '%%s%%d\\n' %s \"$?\" >%s\n", OutputTTY, shellQuote(marker), OutputTTY)
	if err := c.Bytes("hil/run", 0o755, []byte(run.String())); err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func addFile(c *CPIOWriter, name, src string, perm fs.FileMode) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return c.File(name, perm, st.Size(), f)
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
			return addFile(c, dst, p, info.Mode().Perm())
		}
		return nil
	})
}
