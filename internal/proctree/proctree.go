// Package proctree reads what a process and its descendants are doing from
// /proc: how many bytes they have moved through read and write calls, so a
// transfer that waits on a dead connection can be told from one that works,
// and ended with all its processes.
package proctree

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Tree is pid and its descendants, pid first (parents before children).
func Tree(pid int) ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("proctree: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("proctree: read /proc: %w", err)
	}
	children := map[int][]int{}
	for _, n := range names {
		p, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if pp, ok := parent(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// parent is p's parent pid, from /proc/p/stat ("pid (comm) state ppid ...";
// comm may hold spaces and parentheses, so the fields follow the last ')').
func parent(p int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
	if err != nil {
		return 0, false // (gone meanwhile)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(string(f[1]))
	return pp, err == nil
}

// ErrNoIO is returned when the kernel keeps no per-process I/O counts
// (CONFIG_TASK_IO_ACCOUNTING) or they may not be read.
var ErrNoIO = errors.New("no /proc/PID/io")

// IO is the bytes the processes have passed to read and write calls
// (rchar + wchar: files, pipes and sockets alike). A process that has
// exited counts nothing; the first must be readable.
func IO(pids []int) (int64, error) {
	var sum int64
	for i, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/io")
		if err != nil {
			if i == 0 && !errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("%w: %v", ErrNoIO, err)
			}
			continue
		}
		for _, line := range bytes.Split(b, []byte{'\n'}) {
			k, v, ok := bytes.Cut(line, []byte(": "))
			if !ok || (string(k) != "rchar" && string(k) != "wchar") {
				continue
			}
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				sum += n
			}
		}
	}
	return sum, nil
}

// Kill sends SIGKILL to the processes, children before their parents (so a
// parent does not see a child die and act on it first).
func Kill(pids []int) {
	for i := len(pids) - 1; i >= 0; i-- {
		syscall.Kill(pids[i], syscall.SIGKILL)
	}
}
