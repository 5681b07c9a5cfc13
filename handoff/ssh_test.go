package handoff_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
)

// TestOverSSH checks out git (with a submodule) and svn over ssh and fetches
// an rsync dataset over ssh, with the key and known_hosts from the
// credentials file; a wrong host key is refused.
func TestOverSSH(t *testing.T) {
	t.Parallel()
	testserver.Need(t, "git", "svn", "svnadmin", "svnmucc", "svnserve", "rsync")
	sshd := testserver.SSHD(t)
	fx := makeGit(t)
	svnBase := t.TempDir()
	sh(t, svnBase, "svnadmin", "create", "etc")
	write(t, filepath.Join(svnBase, "f"), "svn over ssh\n")
	sh(t, svnBase, "svnmucc", "-U", "file://"+filepath.Join(svnBase, "etc"), "-m", "r1", "mkdir", "trunk", "put", "f", "trunk/hosts")
	dir := t.TempDir()
	src, _ := collection(t, dir)

	base := fmt.Sprintf("ssh://root@127.0.0.1:%d", sshd.Port)
	p := &profile.Profile{
		Repos: []profile.Repo{
			{Name: "etc", Type: "git", URL: base + filepath.Join(fx.base, "etc.git"), Branch: "hosts/laptop", Submodules: true, Path: "/etc"},
			{Name: "svn", Type: "svn", URL: "svn+" + base + filepath.Join(svnBase, "etc"), Branch: "trunk", Path: "/srv/svn"},
		},
		Datasets: []profile.Dataset{{Name: "music", Kind: "selection", Source: base + src, Include: []string{"studio/"}, Path: "/srv/music"}},
	}
	root := newRoot(t)
	wrong := storeOf(t, base+"/ ssh-key "+sshd.Key+"\n"+base+"/ known-hosts "+sshd.WrongHosts+"\n"+
		"svn+"+base+"/ ssh-key "+sshd.Key+"\n"+"svn+"+base+"/ known-hosts "+sshd.WrongHosts+"\n")
	r := handOff(t, root, p, handoff.Options{Creds: wrong})
	for _, it := range r.rep.Items {
		if it.Status != handoff.Failed || !strings.Contains(it.Err.Error(), "host key verification failed: the server's key is not the one in the credentials' known-hosts file") {
			t.Errorf("%s with a wrong host key: %s %v", it.Item, it.Status, it.Err)
		}
	}
	store := storeOf(t, base+"/ ssh-key "+sshd.Key+"\n"+"svn+"+base+"/ ssh-key "+sshd.Key+"\n"+base+"/ known-hosts "+sshd.KnownHosts+"\n"+"svn+"+base+"/ known-hosts "+sshd.KnownHosts+"\n")
	r = handOff(t, root, p, handoff.Options{Creds: store})
	r.mustDone(t, "etc", "svn", "music")
	if read(t, filepath.Join(root, "etc/vendor/sub/sub.txt")) != "submodule content\n" || read(t, filepath.Join(root, "etc/laptop.conf")) != "only on the laptop\n" {
		t.Error("git over ssh: wrong content")
	}
	if read(t, filepath.Join(root, "srv/svn/hosts")) != "svn over ssh\n" {
		t.Error("svn over ssh: wrong content")
	}
	if got := listing(t, filepath.Join(root, "srv/music")); !strings.HasPrefix(got, "studio/2.flac=") || strings.Count(got, "\n") != 1 {
		t.Errorf("rsync over ssh selection:\n%s", got)
	}
}
