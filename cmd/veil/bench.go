package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/server/loadgen"
)

// runBench dispatches 'veil bench <what>'.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "server" {
		fmt.Fprintln(stderr, "usage: veil bench server [flags]")
		return errUsage
	}
	return runBenchServer(ctx, args[1:], stdout, stderr)
}

// runBenchServer starts 'veil server' as a child process (so its memory
// is measured apart from the load generator's), then drives it with
// loadgen: throughput, latency at a fixed rate, and memory per idle
// WebSocket.
func runBenchServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("veil bench server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "database for the server under test (default: SQLite in a temporary directory)")
	devices := fs.Int("devices", 200, "connected devices sending to each other")
	messages := fs.Int("messages", 20000, "messages in the throughput run")
	concurrency := fs.Int("concurrency", 64, "concurrent senders in the throughput run")
	rate := fs.Int("rate", 1000, "messages per second in the latency run")
	dur := fs.Duration("duration", 10*time.Second, "length of the latency run")
	idle := fs.Int("idle", 2000, "idle WebSocket connections for the memory measurement (0 skips)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the throughput and latency runs to this file; the server then runs in this process (profiled with the load generator, whose functions are in package loadgen) and the idle-memory figure is skipped")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return errUsage
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	data, err := os.MkdirTemp("", "veil-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)
	cargs := []string{"server", "--listen", "127.0.0.1:0", "--data", data, "--rate-register", "off",
		"--rate-prekeys", "off", "--rate-lookup", "off", "--max-queue", "1000000", "--log-level", "info"}
	if *db != "" {
		cargs = append(cargs, "--db", *db)
	}
	var addr string
	if *cpuprofile != "" {
		stop, a, err := startInProcess(ctx, cargs)
		if err != nil {
			return err
		}
		defer stop()
		addr, *idle = a, 0
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	} else {
		cmd := exec.CommandContext(ctx, exe, cargs...)
		pipe, err := cmd.StderrPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
		if addr, err = waitAddr(pipe); err != nil {
			return err
		}
		go io.Copy(io.Discard, pipe)
	}
	c := loadgen.NewClient("http://"+addr, *concurrency*2)
	backend := "SQLite"
	if *db != "" {
		backend = "PostgreSQL"
	}
	fmt.Fprintf(stdout, "veil bench server: %s, %d devices, 1 KiB envelopes\n", backend, *devices)
	devs, err := c.Register(ctx, "bench", *devices)
	if err != nil {
		return err
	}
	rcv, err := c.Receive(ctx, devs)
	if err != nil {
		return err
	}
	defer rcv.Close()
	// Warm up.
	if _, err := c.Throughput(ctx, devs, rcv, 1000, *concurrency); err != nil {
		return err
	}
	r, err := c.Throughput(ctx, devs, rcv, *messages, *concurrency)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "throughput (%d concurrent senders): %s\n", *concurrency, r)
	r, err = c.FixedRate(ctx, devs, rcv, *rate, *dur)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fixed rate %d msg/s: %s, send errors %d\n", *rate, r, r.SendErrors)
	if err := rcv.Err(); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	if *idle > 0 {
		idevs, err := c.Register(ctx, "idle", *idle)
		if err != nil {
			return err
		}
		before, err := serverMemory(ctx, c)
		if err != nil {
			return err
		}
		closeIdle, err := c.Idle(ctx, idevs)
		if err != nil {
			return err
		}
		time.Sleep(time.Second)
		after, err := serverMemory(ctx, c)
		closeIdle()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "idle WebSockets: %d, server heap+stack %.1f → %.1f MiB: %.1f KiB per connection\n",
			*idle, before/(1<<20), after/(1<<20), (after-before)/float64(*idle)/1024)
	}
	return nil
}

// startInProcess runs 'veil server' with args in this process (for
// profiling) and returns a function that stops it, and its address.
func startInProcess(ctx context.Context, args []string) (stop func(), addr string, err error) {
	sctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runServer(sctx, args[1:], io.Discard, pw) // args[0] is "server"
		pw.CloseWithError(fmt.Errorf("server exited: %v", err))
		done <- err
	}()
	stop = func() { cancel(); <-done }
	if addr, err = waitAddr(pr); err != nil {
		stop()
		return nil, "", err
	}
	go io.Copy(io.Discard, pr)
	return stop, addr, nil
}

// serverMemory is the server's Go heap in use plus goroutine stacks, after
// a moment to settle.
func serverMemory(ctx context.Context, c *loadgen.Client) (float64, error) {
	h, err := c.Metric(ctx, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return 0, err
	}
	s, err := c.Metric(ctx, "go_memstats_stack_inuse_bytes")
	return h + s, err
}

// waitAddr reads the child's log until it announces its address.
func waitAddr(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	var last string
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "server: serving" {
			return rec.Addr, nil
		}
		last = sc.Text()
		if strings.Contains(last, `"level":"ERROR"`) {
			return "", errors.New("server failed: " + last)
		}
	}
	return "", fmt.Errorf("server exited before listening: %s", last)
}
