package groups

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// bigLog returns the 2,000 ops, in fold order, of a group of 1,000
// members (the default limit) with a steady churn of joins, removals,
// renames and admin changes.
func bigLog(b *testing.B) []Op {
	b.Helper()
	var members []string
	for i := 1; i < DefaultLimit; i++ {
		members = append(members, fmt.Sprintf("m%04d", i))
	}
	ops := []Op{create(1, "admin", "big", members...)}
	for i := 0; len(ops) < 2000; i++ {
		t := int64(10 + i)
		switch i % 4 {
		case 0:
			ops = append(ops, member(t, "admin", Remove, members[i/2]))
		case 1:
			ops = append(ops, member(t, "admin", Add, fmt.Sprintf("n%04d", i)))
		case 2:
			ops = append(ops, rename(t, "admin", fmt.Sprintf("big %d", i)))
		case 3:
			ops = append(ops, setAdmin(t, "admin", members[i/2], i%8 == 3))
		}
	}
	return ops
}

func load(b *testing.B, ops []Op) *Log {
	b.Helper()
	l := NewLog(0)
	for _, o := range ops {
		if _, err := l.Add(o); err != nil {
			b.Fatal(err)
		}
	}
	if s := l.State(); len(s.Members) != DefaultLimit {
		b.Fatalf("%d members", len(s.Members))
	}
	return l
}

// BenchmarkAddState: one more op and the new state, for a log of 2,000
// ops of a 1,000-member group. The newest op is applied to the fold
// kept; an op that sorts before the end makes the state fold everything
// again.
func BenchmarkAddState(b *testing.B) {
	ops := bigLog(b)
	b.Run("newest", func(b *testing.B) {
		l := load(b, ops)
		t := int64(1_000_000)
		for b.Loop() {
			t++
			l.Add(rename(t, "admin", "renamed"))
			if l.State().Name != "renamed" {
				b.Fatal("not renamed")
			}
		}
	})
	b.Run("middle", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			l := load(b, ops)
			b.StartTimer()
			l.Add(member(1000, "admin", Remove, "m0998"))
			if l.State().IsMember("m0998") {
				b.Fatal("not removed")
			}
		}
	})
}

// BenchmarkLoad: all 2,000 ops in random order (a device reading them
// back, or receiving them out of order), then the state.
func BenchmarkLoad(b *testing.B) {
	ops := bigLog(b)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for b.Loop() {
		load(b, ops)
	}
}
