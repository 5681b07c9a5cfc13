package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"gopkg.in/yaml.v3"
)

// source is what Load remembers about the document, for errors and Save.
type source struct {
	src  *yaml.Node // the document node, for comments on Save
	file string
	pos  positions
}

// Load reads, decodes and validates a profile file. On problems it returns an
// Errors value listing all of them; the partly decoded profile is returned too,
// for tools that want to show what they could read.
func Load(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load profile: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load on bytes; name is used in error messages.
func Parse(name string, data []byte) (*Profile, error) {
	p := &Profile{}
	p.file = name
	p.pos = positions{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return p, Errors{{File: name, Pos: Pos{1, 1}, Msg: "empty profile: it needs at least version, host and disks"}}
		}
		return p, Errors{syntaxError(name, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return p, Errors{{File: name, Pos: Pos{extra.Line, extra.Column}, Msg: "more than one YAML document: a profile file holds exactly one"}}
	}
	p.src = &doc
	d := &decoder{file: name, pos: p.pos, bad: map[string]bool{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	p.pos[""] = Pos{root.Line, root.Column}
	d.decode(root, reflect.ValueOf(p).Elem(), "")
	errs := d.errs
	for _, e := range p.validate() {
		if !d.bad[e.Path] {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		errs.sort()
		return p, errs
	}
	return p, nil
}

// syntaxError turns a yaml.v3 parse error ("yaml: line 3: ...") into an Error.
func syntaxError(name string, err error) *Error {
	var line int
	var msg string
	if n, _ := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); n == 1 {
		msg = err.Error()[len(fmt.Sprintf("yaml: line %d: ", line)):]
		return &Error{File: name, Pos: Pos{line, 1}, Msg: "YAML syntax: " + msg}
	}
	return &Error{File: name, Msg: "YAML syntax: " + err.Error()}
}

// PosOf returns where a profile path stands in the file the profile came from.
func (p *Profile) PosOf(path string) Pos { return p.pos.of(path) }

// File is the name the profile was loaded from ("" when built in code).
func (p *Profile) File() string { return p.file }
