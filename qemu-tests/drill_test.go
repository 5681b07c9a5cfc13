package qemutests

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stratahq/strata/drill"
	"github.com/stratahq/strata/initramfs"
)

// STRATA_DRILLS chooses the end-to-end drills: "all" (make test-e2e), "none",
// or a comma-separated list of case names. Each drill restores a profile onto
// blank virtual disks from the live image, boots the result and checks it, so
// it takes minutes under TCG; the default set is the smallest that covers
// every layer kind the issue lists, and is what CI runs.
// The laptop on a disk 30% smaller is restored through the wizard by
// TestWizard, so CI does not drill it twice.
const defaultDrills = "laptop-larger,mirror-bios"

// laptopSmaller is 70% of the laptop example's 8 GiB disk.
const laptopSmaller = 5734 << 20

type drillCase struct {
	name    string
	profile string
	sizes   map[string]int64
	// files builds the directory the drill serves (repos, datasets), with
	// the URL map that points the profile at it.
	files  func(t *testing.T, base string) (string, map[string]string)
	covers string
}

// Together the default cases cover every layer kind: GPT and msdos; LUKS1
// and LUKS2; md RAID1; LVM linear and thin; ext4, xfs, btrfs with
// subvolumes, vfat, swap; BIOS and UEFI; the laptop moved onto a disk 50%
// larger and one 30% smaller; and the hand-off (a git repo, a dataset
// selection, a buffer). The others add systemd-boot and md RAID1 on GPT.
var drillCases = []drillCase{
	{"laptop-larger", "../examples/laptop-uefi.yaml", map[string]int64{"main": 12 << 30}, laptopFiles,
		"GPT, ESP, LUKS2, LVM linear, ext4, xfs, vfat, swap on LVM, UEFI, grub-efi, hand-off (git /etc, dataset selection, buffer), 50% larger disk"},
	{"laptop-smaller", "../examples/laptop-uefi.yaml", map[string]int64{"main": laptopSmaller}, laptopFiles,
		"the laptop on a disk 30% smaller (CI: through the wizard, TestWizard)"},
	{"mirror-bios", "testdata/drill/mirror-bios.yaml", nil, mirrorFiles,
		"msdos on two disks, md RAID1 (metadata 1.0 and 1.2), LUKS1 on md, LVM thin pool and thin volume, xfs root, btrfs subvolumes, BIOS, grub-bios on both disks, hand-off of an svn repo by the restored system's svn"},
	{"bios-msdos", "../examples/bios-msdos.yaml", nil, nil, "msdos, logical partition, ext4, swap partition, BIOS, grub-bios (make drill)"},
	{"server-raid1", "../examples/server-raid1.yaml", nil, nil, "GPT with BIOS boot partitions, md RAID1, LVM on md, xfs, grub-bios on both disks"},
	{"btrfs", "../examples/btrfs-subvolumes.yaml", nil, nil, "btrfs subvolumes, swap partition, systemd-boot, UEFI"},
}

// laptopFiles serves what the laptop example's hand-off fetches from
// files.example.org: /etc as a git repository (branch hosts/laptop, over
// git's dumb HTTP from the drill's file server) and the music dataset with
// its manifest. The /etc repository carries the base image's passwd and
// group plus the user "me" the datasets belong to, as a real /etc repo would.
func laptopFiles(t *testing.T, base string) (string, map[string]string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("skipping: git is not installed (make deps)")
	}
	dir := t.TempDir()
	etc := map[string]string{"motd": "Restored by strata from its profile.\n", "strata-drill": "hosts/laptop\n"}
	for name, body := range imageFiles(t, base, "etc/passwd", "etc/group") {
		etc[strings.TrimPrefix(name, "etc/")] = body
	}
	etc["passwd"] += "me:x:1000:1000:Me,,,:/home/me:/bin/bash\n"
	etc["group"] += "me:x:1000:\n"
	src, bare := filepath.Join(t.TempDir(), "etc"), filepath.Join(dir, "git", "etc.git")
	git(t, "", "init", "-q", "-b", "hosts/laptop", src)
	for name, body := range etc {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, src, "add", ".")
	git(t, src, "commit", "-q", "-m", "laptop /etc")
	git(t, "", "init", "-q", "--bare", bare)
	git(t, src, "push", "-q", bare, "hosts/laptop")
	git(t, bare, "update-server-info") // the dumb HTTP protocol's index
	music := filepath.Join(dir, "datasets", "music")
	var sums strings.Builder
	for i, rel := range []string{"favourites/one.flac", "favourites/live/two.flac", "albums/2023/three.flac"} {
		body := strings.Repeat(fmt.Sprintf("track %d ", i), 4096*(i+1))
		if err := os.MkdirAll(filepath.Dir(filepath.Join(music, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(music, rel), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(body))
		fmt.Fprintf(&sums, "%x  %s\n", h, rel)
	}
	if err := os.WriteFile(filepath.Join(music, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, map[string]string{"https://files.example.org/": "/"}
}

// mirrorFiles serves the mirror fixture's svn repository (trunk with two
// revisions) from svnserve on the host's loopback, which the guest reaches
// as 10.0.2.2.
func mirrorFiles(t *testing.T, _ string) (string, map[string]string) {
	t.Helper()
	for _, prog := range []string{"svn", "svnadmin", "svnserve"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("skipping: %s is not installed (make deps installs subversion)", prog)
		}
	}
	root := t.TempDir()
	repo := filepath.Join(root, "www")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("svnadmin", "create", repo)
	src := filepath.Join(t.TempDir(), "www")
	if err := os.MkdirAll(filepath.Join(src, "trunk"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "trunk", "index.html"), []byte("<p>restored by strata</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("svn", "import", "-q", "-m", "site", src, "file://"+repo)
	run("svn", "mkdir", "-q", "-m", "images", "file://"+repo+"/trunk/img")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("svnserve", "--daemon", "--foreground", "--listen-host=127.0.0.1", fmt.Sprintf("--listen-port=%d", port), "--root="+root)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("svnserve did not listen on %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", map[string]string{"svn://files.example.org/": fmt.Sprintf("svn://10.0.2.2:%d/", port)}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=strata", "GIT_AUTHOR_EMAIL=drill@strata", "GIT_COMMITTER_NAME=strata", "GIT_COMMITTER_EMAIL=drill@strata")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// imageFiles reads files out of a tar.zst base image.
func imageFiles(t *testing.T, image string, names ...string) map[string]string {
	t.Helper()
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]string{}
	tr := tar.NewReader(zr)
	for len(out) < len(names) {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: %v (found %d of %v)", image, err, len(out), names)
		}
		if n := strings.TrimPrefix(h.Name, "./"); want[n] {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[n] = string(b)
		}
	}
	return out
}

func selectedDrills(t *testing.T) map[string]bool {
	want := os.Getenv("STRATA_DRILLS")
	if want == "" {
		want = defaultDrills
	}
	sel := map[string]bool{}
	for _, c := range drillCases {
		sel[c.name] = want == "all"
	}
	for _, n := range strings.Split(want, ",") {
		if _, ok := sel[n]; ok {
			sel[n] = true
		} else if n != "all" && n != "none" && n != "" {
			t.Fatalf("STRATA_DRILLS: no drill case %q", n)
		}
	}
	return sel
}

func TestDrill(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := liveImage(t)
	cache := initramfs.DefaultCacheDir()
	base := filepath.Join(cache, "images", "test-image.tar.zst")
	if _, err := os.Stat(base); err != nil {
		t.Skipf("skipping: no base-system test image (%v): make test-image builds it", err)
	}
	sel := selectedDrills(t)
	for _, c := range drillCases {
		t.Run(c.name, func(t *testing.T) {
			if !sel[c.name] {
				t.Skipf("not selected (minutes under TCG): make test-e2e, or STRATA_DRILLS=%s, runs it (%s)", c.name, c.covers)
			}
			// Drills run side by side, as many at once as there are VM
			// slots (qemu-tests/vm): each spends most of its time in one
			// guest's TCG thread.
			t.Parallel()
			work := drillWorkDir(t, "drill-"+c.name)
			ctx, cancel := context.WithTimeout(context.Background(), 75*time.Minute) // slot waits included: every VM test of the package runs in parallel
			defer cancel()
			o := drill.Options{Profile: c.profile, DiskSizes: c.sizes, Kernel: img.Kernel, Initrd: img.Initramfs,
				SystemImage: base, WorkDir: work, Log: t.Logf}
			if c.files != nil {
				o.Files, o.URLMap = c.files(t, base)
			}
			rep, err := drill.Run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			rep.Text(&b)
			t.Log("\n" + b.String())
			_ = rep.WriteJSON(filepath.Join(work, "report.json"))
			if !rep.Pass {
				t.Fatalf("drill of %s failed; serial logs in %s/logs", c.profile, work)
			}
			// Keep the reports and logs, drop the disk images.
			files, _ := filepath.Glob(filepath.Join(work, "disk-*.img"))
			for _, f := range files {
				os.Remove(f)
			}
		})
	}
}

// drillWorkDir makes a new directory for one drill's disks, logs and
// report under STRATA_DRILL_DIR (default /tmp/strata-drills): a new one
// each run, so two test runs on one machine never share a disk image.
func drillWorkDir(t *testing.T, name string) string {
	root := os.Getenv("STRATA_DRILL_DIR")
	if root == "" {
		root = filepath.Join(os.TempDir(), "strata-drills")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(root, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drill directory (kept): %s", dir)
	return dir
}
