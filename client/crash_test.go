//go:build unix

package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
)

// The crash tests run a device in a child process (this test binary,
// re-executed) that kills itself with SIGKILL at a chosen step; then the
// device runs again and the test checks that nothing was lost, nothing
// was shown twice and the session still works.

func TestMain(m *testing.M) {
	if os.Getenv("VEIL_CRASH_CHILD") != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// crashChild is the device process. It prints one JSON line per message
// it shows (receive) or its send's status.
func crashChild() int {
	step, at := os.Getenv("VEIL_CRASH_STEP"), 0
	at, _ = strconv.Atoi(os.Getenv("VEIL_CRASH_AT"))
	n := 0
	testHook = func(s string) {
		if s == step {
			if n++; n == at {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	ctx := context.Background()
	cfg := testConfig(os.Getenv("VEIL_CRASH_DIR"), "")
	c, err := Open(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	defer c.Close()
	out := json.NewEncoder(os.Stdout)
	switch os.Getenv("VEIL_CRASH_MODE") {
	case "recv":
		for ev, err := range c.Receive(ctx, ReceiveOptions{Once: true}) {
			if err != nil {
				fmt.Fprintln(os.Stderr, "receive:", err)
				return 2
			}
			if ev.Kind == EventMessage {
				out.Encode(ev.Message.Body)
			}
		}
	case "send":
		m, err := c.Send(ctx, os.Getenv("VEIL_CRASH_TO"), os.Getenv("VEIL_CRASH_TEXT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "send:", err)
			return 2
		}
		out.Encode(m.Status.String())
	case "flush":
		if err := c.Flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "flush:", err)
			return 2
		}
	}
	return 0
}

// runDevice runs the child; killed reports whether it died of SIGKILL.
func runDevice(t *testing.T, dir, mode, step string, at int, env ...string) (lines []string, killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VEIL_CRASH_CHILD=1", "VEIL_CRASH_DIR="+dir, "VEIL_CRASH_MODE="+mode,
		"VEIL_CRASH_STEP="+step, fmt.Sprintf("VEIL_CRASH_AT=%d", at))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var s string
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("child output %q", sc.Text())
		}
		lines = append(lines, s)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return lines, true
		}
	}
	if err != nil {
		t.Fatalf("device process (%s, crash at %s #%d): %v", mode, step, at, err)
	}
	return lines, false
}

func TestCrashWhileReceiving(t *testing.T) {
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, bcfg := register(t, ts, "bob")
	an, bn := alice.Self().Username, bob.Self().Username
	bob.Close() // the child processes own bob's profile from here on

	var sent, shown []string
	for _, c := range []struct {
		step string
		at   int
	}{
		{"decrypted", 1}, // inside the transaction, before commit (the first is a PreKey message)
		{"committed", 3}, // committed, not acknowledged
		{"acked", 4},     // acknowledged, not yet shown
		{"decrypted", 5},
	} {
		for i := 0; i < 5; i++ {
			sent = append(sent, mustSend(t, alice, bn, fmt.Sprintf("%s@%d #%d", c.step, c.at, i)).Body)
		}
		lines, killed := runDevice(t, bcfg.Dir, "recv", c.step, c.at)
		if !killed {
			t.Fatalf("the device was not killed at %s #%d", c.step, c.at)
		}
		shown = append(shown, lines...)
		lines, _ = runDevice(t, bcfg.Dir, "recv", "", 0)
		shown = append(shown, lines...)
	}
	// No message shown twice; every message stored once, in order.
	seen := map[string]bool{}
	for _, s := range shown {
		if seen[s] {
			t.Fatalf("message %q shown twice", s)
		}
		seen[s] = true
	}
	bob2, err := Open(context.Background(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	if got := conversation(t, bob2, an); !slices.Equal(got, prefixed("< ", sent)) {
		t.Fatalf("bob's store after the crashes:\n got %q\nwant %q", got, prefixed("< ", sent))
	}
	// The session is not wedged, either way.
	mustSend(t, bob2, an, "still here")
	if got := bodies(drain(t, alice)); !slices.Equal(got, []string{"still here"}) {
		t.Fatalf("alice got %q", got)
	}
	mustSend(t, alice, bn, "me too")
	if got := bodies(drain(t, bob2)); !slices.Equal(got, []string{"me too"}) {
		t.Fatalf("bob got %q", got)
	}
}

func TestCrashWhileSending(t *testing.T) {
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, bcfg := register(t, ts, "bob")
	an, bn := alice.Self().Username, bob.Self().Username
	mustSend(t, alice, bn, "hello")
	drain(t, bob)
	bob.Close()

	var want []string
	for _, step := range []string{"queued", "encrypted", "sent"} {
		text := "crash at " + step
		want = append(want, text)
		_, killed := runDevice(t, bcfg.Dir, "send", step, 1, "VEIL_CRASH_TO="+an, "VEIL_CRASH_TEXT="+text)
		if !killed {
			t.Fatalf("the device was not killed at %s", step)
		}
		runDevice(t, bcfg.Dir, "flush", "", 0) // restarted: the outbox goes out
	}
	if got := bodies(drain(t, alice)); !slices.Equal(got, want) {
		t.Fatalf("alice got %q, want %q (each exactly once)", got, want)
	}
	bob2, err := Open(context.Background(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	ms, _ := bob2.Messages(context.Background(), an, 0, 100)
	for _, m := range ms {
		if m.Outgoing && m.Status != Sent {
			t.Fatalf("bob's message %q is %v after the retry", m.Body, m.Status)
		}
	}
	mustSend(t, alice, bn, "got them")
	if got := bodies(drain(t, bob2)); !slices.Equal(got, []string{"got them"}) {
		t.Fatalf("bob got %q", got)
	}
}

func prefixed(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}
