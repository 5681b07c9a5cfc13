package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkTreeHash: 1,000 small files of a dataset hashed as verify does
// (open beneath the dataset, fstat, read, close), and the open alone, with
// opening by the whole path as the baseline.
func BenchmarkTreeHash(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "a", "b", "c")
	var rels []string
	for d := 0; d < 10; d++ {
		for f := 0; f < 100; f++ {
			rel := fmt.Sprintf("d%d/f%03d", d, f)
			p := filepath.Join(dir, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
				b.Fatal(err)
			}
			rels = append(rels, rel)
		}
	}
	tr, err := openTree(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.close()
	buf := make([]byte, 1<<20)
	b.Run("hash", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, rel := range rels {
				if _, _, err := tr.hash(rel, buf, false); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("open-by-path", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, rel := range rels {
				fd, err := unix.Open(filepath.Join(dir, rel), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			}
		}
	})
	b.Run("open-beneath", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, rel := range rels {
				fd, err := tr.open(rel, false)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			}
		}
	})
}
