package proctree

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"
)

// A shell with a child: the tree holds both, their I/O grows with what goes
// through the pipe, and Kill ends them all.
func TestTreeIOKill(t *testing.T) {
	cmd := exec.Command("sh", "-c", "cat; sleep 60")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var tree []int
	for deadline := time.Now().Add(10 * time.Second); len(tree) < 2; time.Sleep(10 * time.Millisecond) {
		if tree, err = Tree(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree %v: cat never showed as a child", tree)
		}
	}
	if tree[0] != cmd.Process.Pid || slices.Contains(tree, os.Getpid()) {
		t.Fatalf("tree %v of %d", tree, cmd.Process.Pid)
	}
	before, err := IO(tree)
	if err != nil {
		t.Fatal(err)
	}
	in.Write(make([]byte, 100000))
	var after int64
	for deadline := time.Now().Add(10 * time.Second); after < before+2*100000; time.Sleep(10 * time.Millisecond) {
		if after, err = IO(tree); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("I/O %d -> %d: cat's read and write of 100000 bytes not counted", before, after)
		}
	}
	in.Close() // cat ends; sleep is the shell's child now
	var sleeping []int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		sleeping, _ = Tree(cmd.Process.Pid)
		if len(sleeping) == 2 && !slices.Contains(tree[1:], sleeping[1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree %v: no sleep child", sleeping)
		}
	}
	Kill(sleeping)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the shell outlived Kill")
	}
	for deadline := time.Now().Add(10 * time.Second); running(sleeping[1]); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sleep %d outlived Kill", sleeping[1])
		}
	}
}

// running says whether pid is a process that has not ended (a zombie has).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}
