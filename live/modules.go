package live

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stratahq/strata/initramfs/manifest"
)

// ModuleReport says how module loading went.
type ModuleReport struct {
	Loaded  int      // newly loaded
	Already int      // loaded before (or built in)
	NoDev   []string // refused with ENODEV: no such hardware or CPU feature
	Failed  []string // "name: error"
}

// LoadModules loads the image's modules in manifest order, which puts every
// module after its hard and soft dependencies. u-root's init loads nothing
// itself (the image has no modules-load.d): its loader neither knows soft
// dependencies nor handles names mixing '-' and '_'. params holds
// module.key=value settings from the kernel command line.
func LoadModules(m *manifest.Manifest, modRoot string, params map[string][]string) ModuleReport {
	var rep ModuleReport
	dir := filepath.Join(modRoot, m.KernelVersion)
	for _, mod := range m.Modules {
		if _, err := os.Stat(filepath.Join("/sys/module", mod.Name)); err == nil {
			rep.Already++
			continue
		}
		err := finitModule(filepath.Join(dir, mod.Path), strings.Join(params[mod.Name], " "))
		switch {
		case err == nil:
			rep.Loaded++
		case errors.Is(err, unix.EEXIST):
			rep.Already++
		case errors.Is(err, unix.ENODEV):
			// CPU-accelerated ciphers without the CPU feature, efivarfs
			// on BIOS machines: not an error, the generic versions serve.
			rep.NoDev = append(rep.NoDev, mod.Name)
		default:
			rep.Failed = append(rep.Failed, fmt.Sprintf("%s: %v", mod.Name, err))
		}
	}
	return rep
}

func finitModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), params, 0)
}
