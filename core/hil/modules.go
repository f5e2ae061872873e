package hil

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/ulikunitz/xz"
)

// Module is one kernel module: its canonical name (dashes as underscores,
// as the kernel spells it), the names of the modules it depends on (the
// `depends=` field of its .modinfo section), and its path inside the
// kernel package.
type Module struct {
	Name    string
	Depends []string
	Path    string
}

// ModuleName returns the canonical name of the module stored at file
// ("kernel/net/can/can-raw.ko.xz" → "can_raw").
func ModuleName(file string) string {
	base := path.Base(file)
	for _, ext := range []string{".xz", ".ko"} {
		base = strings.TrimSuffix(base, ext)
	}
	return canonical(base)
}

func canonical(name string) string { return strings.ReplaceAll(name, "-", "_") }

// ModuleObject returns the ELF object of a module file's content,
// decompressing a ".ko.xz" module.
func ModuleObject(file string, data []byte) ([]byte, error) {
	if !strings.HasSuffix(file, ".xz") {
		return data, nil
	}
	r, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", file, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", file, err)
	}
	return out, nil
}

// ReadModinfo returns the key=value fields of the .modinfo section of the
// module ELF object obj. A key that occurs several times (alias, parm) keeps
// its values in order.
func ReadModinfo(obj []byte) (map[string][]string, error) {
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("read modinfo: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("read modinfo: no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read modinfo: %w", err)
	}
	info := map[string][]string{}
	for field := range bytes.SplitSeq(data, []byte{0}) {
		k, v, ok := strings.Cut(string(field), "=")
		if !ok {
			continue // padding between fields
		}
		info[k] = append(info[k], v)
	}
	return info, nil
}

// ParseModule reads the module stored at file (inside the kernel package)
// with the given content.
func ParseModule(file string, data []byte) (Module, error) {
	obj, err := ModuleObject(file, data)
	if err != nil {
		return Module{}, err
	}
	info, err := ReadModinfo(obj)
	if err != nil {
		return Module{}, fmt.Errorf("%s: %w", file, err)
	}
	m := Module{Name: ModuleName(file), Path: file}
	for _, deps := range info["depends"] {
		for d := range strings.SplitSeq(deps, ",") {
			if d = strings.TrimSpace(d); d != "" {
				m.Depends = append(m.Depends, canonical(d))
			}
		}
	}
	return m, nil
}

// LoadOrder returns the modules that must be loaded for wanted, each after
// every module it depends on. index maps canonical names to modules. The
// order is deterministic: dependencies first, then wanted in the given order.
func LoadOrder(index map[string]Module, wanted []string) ([]Module, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []Module
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = canonical(name)
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: %s", ErrModuleCycle, strings.Join(append(chain, name), " → "))
		}
		m, ok := index[name]
		if !ok {
			if len(chain) > 0 {
				return fmt.Errorf("%w: %s (needed by %s)", ErrModuleNotFound, name, chain[len(chain)-1])
			}
			return fmt.Errorf("%w: %s", ErrModuleNotFound, name)
		}
		state[name] = visiting
		for _, d := range m.Depends {
			if err := visit(d, append(slices.Clip(chain), name)); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, m)
		return nil
	}
	for _, w := range wanted {
		if err := visit(w, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
