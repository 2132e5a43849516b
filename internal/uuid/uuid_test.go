package uuid

import "testing"

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := New()
		if !Valid(s) || s[14] != '4' || (s[19] != '8' && s[19] != '9' && s[19] != 'a' && s[19] != 'b') {
			t.Fatalf("New() = %q: not a canonical version-4 UUID", s)
		}
		if seen[s] {
			t.Fatalf("New() repeated %q", s)
		}
		seen[s] = true
	}
}

func TestValid(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"123e4567-e89b-12d3-a456-426614174000", true},
		{"123E4567-e89b-12d3-a456-426614174000", false}, // uppercase
		{"123e4567e89b-12d3-a456-426614174000-", false}, // dash misplaced
		{"123e4567-e89b-12d3-a456-42661417400", false},  // short
		{"123e4567-e89b-12d3-a456-4266141740000", false},
		{"123e4567-e89b-12d3-a456-42661417400g", false},
		{"../../../../../../../../../../../etc", false},
		{"", false},
	} {
		if got := Valid(c.s); got != c.want {
			t.Errorf("Valid(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}
