// Package testserver starts real servers on loopback for the hand-off's
// tests and benchmark: git daemon, git http-backend (behind net/http/cgi,
// with basic auth), svnserve, an rsync daemon, and a TCP proxy that cuts
// one connection after a number of bytes. Each binds 127.0.0.1 on a free
// port and is stopped by t.Cleanup.
package testserver

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Need skips the test, with the reason, when a program is missing.
func Need(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: %s is not installed (make deps installs it)", p)
		}
	}
}

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs a daemon until the test ends, waiting until it accepts on port.
func Start(t testing.TB, port int, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: &out}, &lockedWriter{w: &out}
	// Its own process group, so the daemon's children (git daemon forks one
	// per connection) stop with it; WaitDelay in case one holds the pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %d: %s", name, port, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %d within 10 s: %s", name, port, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// GitDaemon serves the bare repositories under base as git://127.0.0.1:PORT/NAME.
func GitDaemon(t testing.TB, base string) string {
	t.Helper()
	Need(t, "git")
	port := FreePort(t)
	Start(t, port, "git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), "--base-path="+base, base)
	return fmt.Sprintf("git://127.0.0.1:%d/", port)
}

// GitHTTP serves the repositories under base with git http-backend; with a
// user, every request must carry that basic auth. Returns the base URL.
func GitHTTP(t testing.TB, base, user, password string) string {
	t.Helper()
	return serve(t, &http.Server{Handler: gitHandler(t, base, user, password)}, nil)
}

// GitHTTPS is GitHTTP over https, with c's certificate.
func GitHTTPS(t testing.TB, base, user, password string, c *TLS) string {
	t.Helper()
	return serve(t, &http.Server{Handler: gitHandler(t, base, user, password)}, c)
}

func gitHandler(t testing.TB, base, user, password string) http.Handler {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("skipping: no git-http-backend (%v)", err)
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + base, "GIT_HTTP_EXPORT_ALL=1"}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Serve runs srv on a loopback port until the test ends; returns http://ADDR/.
func Serve(t testing.TB, srv *http.Server) string {
	t.Helper()
	return serve(t, srv, nil)
}

// ServeTLS runs srv over https with c's certificate; returns https://ADDR/.
func ServeTLS(t testing.TB, srv *http.Server, c *TLS) string {
	t.Helper()
	return serve(t, srv, c)
}

func serve(t testing.TB, srv *http.Server, c *TLS) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if c != nil {
		scheme = "https"
		srv.TLSConfig = c.Config.Clone()          // (the server adds to it: one each)
		srv.ErrorLog = log.New(io.Discard, "", 0) // (refused handshakes are what some tests want)
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return scheme + "://" + ln.Addr().String() + "/"
}

// SVNServe serves the repositories under root as svn://127.0.0.1:PORT/NAME.
// Each repository's conf must already say who may read it.
func SVNServe(t testing.TB, root string) string {
	t.Helper()
	Need(t, "svnserve")
	port := FreePort(t)
	Start(t, port, "svnserve", "--daemon", "--foreground", "--listen-host=127.0.0.1",
		"--listen-port="+strconv.Itoa(port), "--root="+root)
	return fmt.Sprintf("svn://127.0.0.1:%d/", port)
}

// SVNApache serves the repositories under parent as
// http://127.0.0.1:PORT/svn/NAME from a real Apache with mod_dav_svn, every
// request needing user's basic auth. Apache will not run as root: it runs
// as www-data, and the repositories are given to it. Skips with the reason
// when Apache or mod_dav_svn is missing.
func SVNApache(t testing.TB, parent, user, password string) string {
	t.Helper()
	return svnApache(t, parent, user, password, nil)
}

// SVNApacheTLS is SVNApache over https (mod_ssl), with c's certificate:
// https://127.0.0.1:PORT/svn/.
func SVNApacheTLS(t testing.TB, parent, user, password string, c *TLS) string {
	t.Helper()
	return svnApache(t, parent, user, password, c)
}

func svnApache(t testing.TB, parent, user, password string, c *TLS) string {
	t.Helper()
	const mods = "/usr/lib/apache2/modules"
	httpd, err := exec.LookPath("apache2")
	if err != nil {
		httpd = "/usr/sbin/apache2" // not on a non-root PATH
	}
	for _, f := range []string{httpd, filepath.Join(mods, "mod_dav_svn.so"), filepath.Join(mods, "mod_ssl.so")} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("skipping: svn over http needs Apache with mod_dav_svn and mod_ssl (make deps installs apache2 and libapache2-mod-svn): %v", err)
		}
	}
	if out, err := exec.Command("chown", "-R", "www-data:www-data", parent).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot give the repositories to Apache's user www-data: %v: %s", err, out)
	}
	dir := t.TempDir()
	// Test directories are 0700 root: let www-data reach its files.
	for _, d := range []string{dir, parent} {
		for ; strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	sum := sha1.Sum([]byte(password))
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, "ServerName 127.0.0.1\nListen 127.0.0.1:%d\nUser www-data\nGroup www-data\n", port)
	fmt.Fprintf(&conf, "PidFile %s/httpd.pid\nErrorLog %s/error.log\nLogLevel warn\nDefaultRuntimeDir %s\nMutex file:%s default\n", dir, dir, dir, dir)
	for _, m := range []string{"mpm_event", "authn_core", "authn_file", "authz_core", "authz_user", "auth_basic", "dav", "dav_svn"} {
		fmt.Fprintf(&conf, "LoadModule %s_module %s/mod_%s.so\n", m, mods, m)
	}
	scheme := "http"
	if c != nil {
		scheme = "https"
		fmt.Fprintf(&conf, "LoadModule ssl_module %s/mod_ssl.so\nLoadModule socache_shmcb_module %s/mod_socache_shmcb.so\n", mods, mods)
		fmt.Fprintf(&conf, "SSLSessionCache shmcb:%s/ssl_scache(512000)\nSSLEngine on\nSSLCertificateFile %s\nSSLCertificateKeyFile %s\n", dir, c.CertFile, c.KeyFile)
	}
	fmt.Fprintf(&conf, "<Location /svn>\n  DAV svn\n  SVNParentPath %s\n  AuthType Basic\n  AuthName strata-test\n  AuthUserFile %s/htpasswd\n  Require valid-user\n</Location>\n", parent, dir)
	cf := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(cf, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
				t.Logf("apache error.log:\n%s", b)
			}
		}
	})
	Start(t, port, httpd, "-f", cf, "-DFOREGROUND")
	return fmt.Sprintf("%s://127.0.0.1:%d/svn/", scheme, port)
}

// SVNAuth makes repository repo readable only by user with password.
func SVNAuth(t testing.TB, repo, user, password string) {
	t.Helper()
	conf := "[general]\nanon-access = none\nauth-access = write\npassword-db = passwd\nrealm = strata-test\n"
	if err := os.WriteFile(filepath.Join(repo, "conf/svnserve.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "conf/passwd"), []byte("[users]\n"+user+" = "+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// RsyncModule is one module of an rsync daemon.
type RsyncModule struct {
	Name, Path     string
	User, Password string // both empty: anonymous
}

// RsyncDaemon serves modules as rsync://127.0.0.1:PORT/NAME/. Returns the
// base URL and the port.
func RsyncDaemon(t testing.TB, modules ...RsyncModule) (string, int) {
	t.Helper()
	Need(t, "rsync")
	dir := t.TempDir()
	var conf strings.Builder
	fmt.Fprintf(&conf, "pid file = %s/rsyncd.pid\nuse chroot = no\nuid = root\ngid = root\nlog file = %s/rsyncd.log\n", dir, dir)
	for _, m := range modules {
		fmt.Fprintf(&conf, "[%s]\npath = %s\nread only = yes\n", m.Name, m.Path)
		if m.User != "" {
			secrets := filepath.Join(dir, m.Name+".secrets")
			if err := os.WriteFile(secrets, []byte(m.User+":"+m.Password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&conf, "auth users = %s\nsecrets file = %s\n", m.User, secrets)
		}
	}
	cfg := filepath.Join(dir, "rsyncd.conf")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	Start(t, port, "rsync", "--daemon", "--no-detach", "--config="+cfg, "--address=127.0.0.1", "--port="+strconv.Itoa(port))
	return fmt.Sprintf("rsync://127.0.0.1:%d/", port), port
}

// Proxy forwards loopback TCP connections to a target. The first
// connection to carry CutAfter bytes from the server is dropped there;
// everything else passes untouched.
type Proxy struct {
	Addr string // 127.0.0.1:PORT to connect to
	// Refuse closes new connections at once (a server gone away);
	// RefuseAfterCut sets it when the cut happens.
	Refuse, RefuseAfterCut atomic.Bool
	// Silent makes the cut a link that died without a word: nothing more
	// passes either way, and nothing is closed until the client closes.
	Silent atomic.Bool
	pace   atomic.Int64 // see SetPace

	target   string
	cutAfter int64
	cut      atomic.Bool
	conns    atomic.Int64
	mu       sync.Mutex
	perConn  []int64 // bytes server→client, per connection
	cuts     atomic.Int64
	listener net.Listener
}

// NewProxy starts a proxy to target that cuts one connection after cutAfter
// bytes from the server (0: never).
func NewProxy(t testing.TB, target string, cutAfter int64) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, cutAfter: cutAfter, listener: ln}
	go p.serve()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.listener.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer c.Close()
	if p.Refuse.Load() {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	idx := len(p.perConn)
	p.perConn = append(p.perConn, 0)
	p.mu.Unlock()
	p.conns.Add(1)
	clientDone := make(chan struct{})
	var dead atomic.Bool // this connection went silent
	go func() {
		defer close(clientDone)
		buf := make([]byte, 32<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 && !dead.Load() {
				if _, werr := up.Write(buf[:k]); werr != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
		if tc, ok := up.(*net.TCPConn); ok && !dead.Load() {
			tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		want := int64(len(buf))
		armed := p.cutAfter > 0 && !p.cut.Load()
		if armed && p.cutAfter-n < want {
			want = p.cutAfter - n
		}
		if want == 0 && p.cut.CompareAndSwap(false, true) {
			p.cuts.Add(1)
			if p.RefuseAfterCut.Load() {
				p.Refuse.Store(true)
			}
			if p.Silent.Load() {
				dead.Store(true)
				<-clientDone
				return
			}
			// A hard cut: reset, as a dropped link looks to the client.
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			return
		}
		k, err := up.Read(buf[:want])
		if d := time.Duration(p.pace.Load()); k > 0 && d > 0 {
			time.Sleep(d)
		}
		if k > 0 {
			if _, werr := c.Write(buf[:k]); werr != nil {
				return
			}
			n += int64(k)
			p.mu.Lock()
			p.perConn[idx] = n
			p.mu.Unlock()
		}
		if err != nil {
			if tc, ok := c.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				tc.CloseWrite()
				select {
				case <-clientDone:
				case <-time.After(30 * time.Second):
				}
			}
			return
		}
	}
}

// SetPace makes the proxy wait d before each chunk (32 KiB at most) from
// the server: a slow link, on which something still moves.
func (p *Proxy) SetPace(d time.Duration) { p.pace.Store(int64(d)) }

// Cuts is how many connections were cut.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// Bytes returns the bytes sent server→client on each connection so far.
func (p *Proxy) Bytes() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64{}, p.perConn...)
}

// Total is the bytes sent server→client over all connections.
func (p *Proxy) Total() int64 {
	var s int64
	for _, n := range p.Bytes() {
		s += n
	}
	return s
}

// SSH is an sshd on loopback that lets root in with a key made for the test.
type SSH struct {
	Port       int
	Key        string // the client's private key
	KnownHosts string // the server's host key, as known_hosts
	WrongHosts string // a known_hosts with another key for the same host
}

// SSHD starts an sshd for the test (root login with a fresh key only).
func SSHD(t testing.TB) SSH {
	t.Helper()
	Need(t, "ssh", "ssh-keygen")
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("skipping: no /usr/sbin/sshd (apt-get install openssh-server; make deps)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: sshd for the test logs in as root and must run as root")
	}
	dir := t.TempDir()
	for _, k := range []string{"host", "client", "other"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	port := FreePort(t)
	s := SSH{Port: port, Key: filepath.Join(dir, "client"), KnownHosts: filepath.Join(dir, "known_hosts"), WrongHosts: filepath.Join(dir, "wrong_hosts")}
	hostKey := strings.Fields(read("host.pub"))
	otherKey := strings.Fields(read("other.pub"))
	os.WriteFile(s.KnownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, hostKey[0], hostKey[1])), 0o644)
	os.WriteFile(s.WrongHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, otherKey[0], otherKey[1])), 0o644)
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(read("client.pub")+"\n"), 0o600)
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host
AuthorizedKeysFile %s/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
PidFile none
`, port, dir, dir)
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o644)
	os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	Start(t, port, "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	return s
}
