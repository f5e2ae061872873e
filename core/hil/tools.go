package hil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Tool is a host program the guest image carries, and the Debian package
// that installs it (named when the program is missing).
type Tool struct {
	Name    string
	Package string
}

// DefaultTools are the host programs the base initramfs carries with their
// shared libraries: runc, to run containers; can-utils' candump, cansend
// and cangw, the independent check of berth's CAN paths; and iproute2's ip,
// whose `ip link` knows the vcan, vxcan and can types busybox's ip lacks.
func DefaultTools() []Tool {
	return []Tool{
		{"runc", "runc"},
		{"candump", "can-utils"},
		{"cansend", "can-utils"},
		{"cangw", "can-utils"},
		{"ip", "iproute2"},
	}
}

// toolDirs are searched after PATH: a non-root PATH often lacks the sbin dirs.
var toolDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// LookTool returns the host path of program name: an absolute path as it
// is, else the first match in PATH and then the usual bin and sbin dirs.
func LookTool(name string) (string, error) {
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("%w: %w", ErrToolNotFound, err)
		}
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil && filepath.IsAbs(p) {
		return p, nil
	}
	for _, d := range toolDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s is not in PATH or %v", ErrToolNotFound, name, toolDirs)
}

// ToolFiles finds each tool on the host (LookTool) and returns it with its
// interpreter and libraries (HostBinary), each at its host path, each name
// once. Guest PATH lists the host's bin and sbin dirs before busybox's
// /bin, so a tool wins over a busybox applet of the same name.
func ToolFiles(tools []Tool) ([]File, error) {
	var files []File
	seen := map[string]bool{}
	for _, t := range tools {
		p, err := LookTool(t.Name)
		if err != nil {
			return nil, fmt.Errorf("guest tool %s: %w (install the Debian package %s: make deps)", t.Name, err, t.Package)
		}
		fs, err := HostBinary(p)
		if err != nil {
			return nil, fmt.Errorf("guest tool %s: %w", t.Name, err)
		}
		for _, f := range fs {
			if !seen[f.Name] {
				seen[f.Name] = true
				files = append(files, f)
			}
		}
	}
	return files, nil
}
