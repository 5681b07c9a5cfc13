// Package manifest describes what a strata live image contains. The builder
// (package initramfs) writes it into the image at Path; the live runtime
// (package live) reads it to load modules and check tools. It imports
// nothing so that the runtime does not pull in the builder.
package manifest

import (
	"encoding/json"
	"fmt"
	"os"
)

// Path is where the manifest lives inside the image.
const Path = "/etc/strata/manifest.json"

// Manifest is the image's table of contents.
type Manifest struct {
	KernelVersion string `json:"kernel_version"`
	// Modules in load order: each after its hard and soft dependencies.
	Modules []Module `json:"modules"`
	// BuiltinModules were requested but are built into the kernel.
	BuiltinModules []string `json:"builtin_modules,omitempty"`
	// MissingModules were requested but this kernel does not have them.
	MissingModules []string `json:"missing_modules,omitempty"`
	Tools          []Tool   `json:"tools"`
	// Libraries added by name because programs dlopen them (ELF
	// dependencies do not list them).
	DlopenLibraries []string `json:"dlopen_libraries,omitempty"`
}

// Module is one kernel module file.
type Module struct {
	Name string `json:"name"` // normalised: '-' written as '_'
	Path string `json:"path"` // relative to /lib/modules/<kver>
}

// Tool is one program from the build host, with a harmless invocation that
// proves it runs (its libraries load).
type Tool struct {
	Name    string   `json:"name"`
	Path    string   `json:"path"` // absolute path inside the image
	Group   string   `json:"group"`
	Probe   []string `json:"probe"` // arguments
	AnyExit bool     `json:"any_exit,omitempty"`
	// Aliases are other names (symlinks) for the same program.
	Aliases []string `json:"aliases,omitempty"`
}

// Read loads the manifest from path.
func Read(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return &m, nil
}
