package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/client"
)

// veil group: groups live on the devices; the server sees sealed
// envelopes only.

const groupUsage = `usage: veil group SUBCOMMAND [flags] ...

  list                         your groups
  create NAME [USERNAME...]    create a group with you as admin
  show GROUP                   members and admins
  send GROUP MESSAGE...        send a message to every member
  messages GROUP               the group's conversation
  add GROUP USERNAME...        add members (admins)
  remove GROUP USERNAME        remove a member (admins)
  leave GROUP                  leave the group
  rename GROUP NAME            rename the group (admins)
  admin GROUP USERNAME         make a member an admin (--revoke: take it back)

GROUP is the group's id or its name (when no other group has that name).`

func runGroup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, groupUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, args := args[0], args[1:]
	type spec struct {
		synopsis    string
		min, max    int
		needsGroup  bool
		run         func(c *client.Client, group string, pos []string, f *clientFlags) error
		description string
	}
	revoke := false
	specs := map[string]spec{
		"list": {"[flags]", 0, 0, false, func(c *client.Client, _ string, _ []string, f *clientFlags) error {
			gs, err := c.Groups(ctx)
			if err != nil {
				return err
			}
			if f.json {
				printJSON(stdout, gs)
				return nil
			}
			if len(gs) == 0 {
				fmt.Fprintln(stdout, "no groups yet: veil group create NAME USERNAME...")
			}
			for _, g := range gs {
				state := ""
				if !g.Member {
					state = " (you left)"
				}
				fmt.Fprintf(stdout, "%s  %s  %d members%s\n", g.ID, g.Name, len(g.Members), state)
			}
			return nil
		}, "Lists your groups."},
		"create": {"[flags] NAME [USERNAME...]", 1, -1, false, func(c *client.Client, _ string, pos []string, f *clientFlags) error {
			g, err := c.CreateGroup(ctx, pos[0], pos[1:]...)
			if err != nil {
				return err
			}
			return showGroup(stdout, g, f.json)
		}, "Creates a group with you as its admin."},
		"show": {"[flags] GROUP", 1, 1, true, func(c *client.Client, group string, _ []string, f *clientFlags) error {
			g, err := c.Group(ctx, group)
			if err != nil {
				return err
			}
			return showGroup(stdout, g, f.json)
		}, "Shows a group's members and admins."},
		"send": {"[flags] GROUP MESSAGE...", 2, -1, true, func(c *client.Client, group string, pos []string, f *clientFlags) error {
			m, err := c.SendGroup(ctx, group, strings.Join(pos[1:], " "))
			if err != nil {
				return err
			}
			if f.json {
				printJSON(stdout, map[string]any{"id": m.ID, "group": group, "status": m.Status.String(), "sent_at": m.SentAt.UTC().Format(time.RFC3339Nano)})
			} else if m.Status == client.Sent {
				fmt.Fprintln(stdout, "sent to the group")
			} else {
				fmt.Fprintln(stdout, "queued: it goes out with the next send, recv or chat")
			}
			return nil
		}, "Sends a message to every member of the group (encrypted once, one upload)."},
		"messages": {"[flags] GROUP", 1, 1, true, func(c *client.Client, group string, _ []string, f *clientFlags) error {
			ms, err := c.GroupMessages(ctx, group, 0, 1000)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if f.json {
					printEvent(stdout, client.Event{Kind: client.EventMessage, Message: m, Group: m.Group}, true)
				} else {
					fmt.Fprintln(stdout, formatMessage(m, false))
				}
			}
			return nil
		}, "Shows the group's conversation."},
		"add": {"[flags] GROUP USERNAME...", 2, -1, true, func(c *client.Client, group string, pos []string, _ *clientFlags) error {
			return c.AddGroupMembers(ctx, group, pos[1:]...)
		}, "Adds members (admins only); they get the group's history of membership changes."},
		"remove": {"[flags] GROUP USERNAME", 2, 2, true, func(c *client.Client, group string, pos []string, _ *clientFlags) error {
			return c.RemoveGroupMember(ctx, group, pos[1])
		}, "Removes a member (admins only); later messages use new keys the member does not get."},
		"leave": {"[flags] GROUP", 1, 1, true, func(c *client.Client, group string, _ []string, _ *clientFlags) error {
			return c.LeaveGroup(ctx, group)
		}, "Leaves the group."},
		"rename": {"[flags] GROUP NAME", 2, 2, true, func(c *client.Client, group string, pos []string, _ *clientFlags) error {
			return c.RenameGroup(ctx, group, pos[1])
		}, "Renames the group (admins only); the name never reaches the server."},
		"admin": {"[flags] GROUP USERNAME", 2, 2, true, func(c *client.Client, group string, pos []string, _ *clientFlags) error {
			return c.SetGroupAdmin(ctx, group, pos[1], !revoke)
		}, "Makes a member an admin (admins only); --revoke takes it back."},
	}
	sp, ok := specs[sub]
	if !ok {
		fmt.Fprintf(stderr, "veil group: unknown subcommand %q\n\n%s\n", sub, groupUsage)
		return errUsage
	}
	fs, f := newClientFlagSet("group "+sub, sp.synopsis, sp.description, stderr)
	if sub == "admin" {
		fs.BoolVar(&revoke, "revoke", false, "take the admin role away instead")
	}
	pos, err := parseArgs(fs, args, sp.min, sp.max)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	group := ""
	if sp.needsGroup {
		if group, err = findGroup(ctx, c, pos[0]); err != nil {
			return err
		}
	}
	if err := sp.run(c, group, pos, f); err != nil {
		return explainGroup(err)
	}
	return nil
}

// findGroup takes a group id or a name that only one group has.
func findGroup(ctx context.Context, c *client.Client, ref string) (string, error) {
	gs, err := c.Groups(ctx)
	if err != nil {
		return "", err
	}
	var byName []client.Group
	for _, g := range gs {
		if g.ID == strings.ToLower(ref) {
			return g.ID, nil
		}
		if g.Name == ref {
			byName = append(byName, g)
		}
	}
	switch len(byName) {
	case 1:
		return byName[0].ID, nil
	case 0:
		return "", fmt.Errorf("no group %q here (veil group list shows yours)", ref)
	}
	return "", fmt.Errorf("%d groups are named %q; use the id (veil group list)", len(byName), ref)
}

func explainGroup(err error) error {
	switch {
	case errors.Is(err, client.ErrNotGroupAdmin):
		return errors.New("only the group's admins may do that")
	case errors.Is(err, client.ErrNotGroupMember):
		return errors.New("you are not a member of this group")
	case errors.Is(err, client.ErrNoSuchUser):
		return fmt.Errorf("%v", err)
	}
	return explain(err)
}

func showGroup(w io.Writer, g client.Group, asJSON bool) error {
	if asJSON {
		printJSON(w, g)
		return nil
	}
	fmt.Fprintf(w, "%s  %s\n", g.ID, g.Name)
	for _, m := range g.Members {
		name := m.Username
		if name == "" {
			name = m.Account
		}
		role := ""
		if m.Admin {
			role = " (admin)"
		}
		fmt.Fprintf(w, "  %s%s\n", name, role)
	}
	if !g.Member {
		fmt.Fprintln(w, "  you are no longer a member")
	}
	return nil
}
