package restore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/stratahq/strata/profile"
)

// KeySource gives the passphrase of a LUKS volume. confirm asks for it
// twice when it is typed, because a new volume gets it.
type KeySource interface {
	Passphrase(ctx context.Context, luks string, confirm bool) ([]byte, error)
}

// ProfileKeys serves passphrases from the sources the profile names:
// prompt (the terminal, without echo), file, url, or the test-only literal.
// Each is fetched once per run. Passphrases never reach argv, files or logs.
type ProfileKeys struct {
	Keys map[string]profile.Key // by LUKS name
	// Prompt reads a passphrase from the user (default: /dev/tty without echo).
	Prompt func(prompt string) ([]byte, error)
	Client *http.Client

	mu    sync.Mutex
	cache map[string][]byte
}

// NewProfileKeys collects the key sources of p's LUKS volumes.
func NewProfileKeys(p *profile.Profile) *ProfileKeys {
	k := &ProfileKeys{Keys: map[string]profile.Key{}}
	for _, l := range p.LUKS {
		k.Keys[l.Name] = l.Key
	}
	return k
}

// Passphrase implements KeySource.
func (k *ProfileKeys) Passphrase(ctx context.Context, name string, confirm bool) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b, ok := k.cache[name]; ok {
		return b, nil
	}
	src, ok := k.Keys[name]
	if !ok {
		return nil, fmt.Errorf("no LUKS volume %s in the profile", name)
	}
	var b []byte
	var err error
	switch {
	case src.Literal != "":
		b = []byte(src.Literal)
	case src.File != "":
		// The file's bytes are the key, exactly, as cryptsetup --key-file reads it.
		b, err = os.ReadFile(src.File)
	case src.URL != "":
		b, err = k.fetch(ctx, src.URL)
	default:
		b, err = k.ask(name, confirm)
	}
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if k.cache == nil {
		k.cache = map[string][]byte{}
	}
	k.cache[name] = b
	return b, nil
}

func (k *ProfileKeys) fetch(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("key URL: %w", err)
	}
	if u.Scheme == "file" {
		return os.ReadFile(u.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("key URL: %w", err)
	}
	c := k.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch key: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch key from %s: %s", u.Redacted(), resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}

func (k *ProfileKeys) ask(name string, confirm bool) ([]byte, error) {
	prompt := k.Prompt
	if prompt == nil {
		prompt = ttyPrompt
	}
	for try := 0; try < 3; try++ {
		a, err := prompt(fmt.Sprintf("Passphrase for LUKS volume %s: ", name))
		if err != nil {
			return nil, err
		}
		if !confirm {
			return a, nil
		}
		b, err := prompt(fmt.Sprintf("Passphrase for LUKS volume %s, again: ", name))
		if err != nil {
			return nil, err
		}
		if bytes.Equal(a, b) {
			return a, nil
		}
		fmt.Fprintln(os.Stderr, "The passphrases differ; try again.")
	}
	return nil, errors.New("the passphrases differed three times")
}

// ttyPrompt reads from the controlling terminal without echo, so a
// passphrase is neither shown nor taken from a pipe by mistake.
func ttyPrompt(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("no terminal to ask for the passphrase (give the key as file or url in the profile): %w", err)
	}
	defer tty.Close()
	// Echo goes off before the prompt appears: keys typed ahead of a prompt
	// (a person in a hurry, or a console script) are never shown.
	fd := int(tty.Fd())
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	quiet := *saved
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, saved)
	fmt.Fprint(tty, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	fmt.Fprintln(tty)
	if err != nil && line == "" {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}
