package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// The client commands are tested as scripts (testdata/script/*.txtar):
// each runs the real veil binary's main against its own server on
// SQLite, the way a person or a bot would use them.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"veil": main})
}

func TestCLI(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			url, stop, err := scriptServer(env.WorkDir)
			if err != nil {
				return err
			}
			env.Defer(stop)
			env.Setenv("VEIL_SERVER", url)
			env.Setenv("VEIL_PASSPHRASE", "correct horse battery staple")
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// setenv-from-file NAME FILE: wait (up to 30 s) for FILE, then
			// NAME = its first line.
			"setenv-from-file": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: setenv-from-file NAME FILE")
				}
				for i := 0; i < 300; i++ {
					if b, err := os.ReadFile(ts.MkAbs(args[1])); err == nil && strings.Contains(string(b), "\n") {
						ts.Setenv(args[0], strings.TrimSpace(string(b)))
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				ts.Fatalf("%s did not appear", args[1])
			},
			// setenv-from-stdout NAME REGEXP: NAME = the first group of
			// REGEXP in the last command's standard output.
			"setenv-from-stdout": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: setenv-from-stdout NAME REGEXP")
				}
				m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
				if len(m) < 2 {
					ts.Fatalf("%q does not match the last stdout", args[1])
				}
				ts.Setenv(args[0], m[1])
			},
		},
	})
}

// scriptServer runs a veil server on SQLite in dir on a loopback port.
func scriptServer(dir string) (string, func(), error) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "server.db"))
	if err != nil {
		return "", nil, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	// Beside the database, as `veil server` keeps it (admin commands
	// that sign need it).
	if err := os.WriteFile(filepath.Join(dir, "server.secret"), secret, 0o600); err != nil {
		st.Close()
		return "", nil, err
	}
	// Legal holds are on, with two administrators whose keys are in the
	// work directory (ada.key, grace.key), and an organisation age key
	// (org.key, its recipient in org.pub) for compliance archives.
	admins := legalhold.Admins{}
	for _, name := range []string{"ada", "grace"} {
		k, err := legalhold.GenerateAdminKey(name, rand.Reader)
		if err != nil {
			st.Close()
			return "", nil, err
		}
		b, _ := k.MarshalText()
		if err := os.WriteFile(filepath.Join(dir, name+".key"), b, 0o600); err != nil {
			st.Close()
			return "", nil, err
		}
		admins[name] = k.Public()
	}
	var lines []string
	for _, n := range admins.Names() {
		lines = append(lines, fmt.Sprintf("%s %x", n, []byte(admins[n])))
	}
	org, err := age.GenerateX25519Identity()
	if err != nil {
		st.Close()
		return "", nil, err
	}
	if err := errors.Join(os.WriteFile(filepath.Join(dir, "admins"), []byte(strings.Join(lines, "\n")+"\n"), 0o600),
		os.WriteFile(filepath.Join(dir, "org.key"), []byte(org.String()+"\n"), 0o600),
		os.WriteFile(filepath.Join(dir, "org.pub"), []byte(org.Recipient().String()+"\n"), 0o600)); err != nil {
		st.Close()
		return "", nil, err
	}
	srv, err := server.New(server.Config{Store: st, Secret: secret,
		LegalHold: server.LegalHoldConfig{Mode: server.HoldsOn, Approvals: 2, Admins: admins}})
	if err != nil {
		st.Close()
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return "", nil, err
	}
	srv.Start(l)
	return "http://" + l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		st.Close()
		os.Remove(filepath.Join(dir, "server.db"))
	}, nil
}
