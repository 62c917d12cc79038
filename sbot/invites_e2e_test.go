package sbot_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestInviteCLI: `sbot invite create` on one daemon, `sbot invite accept`
// on another, through the CLI; the two then replicate. A second use of a
// single-use code fails (exit 1) and bad input is a usage error (exit 2).
func TestInviteCLI(t *testing.T) {
	pubRepo, freshRepo, lateRepo := t.TempDir(), t.TempDir(), t.TempDir()
	pub := startDaemon(t, pubRepo)
	fresh := startDaemon(t, freshRepo)
	startDaemon(t, lateRepo)
	var created struct {
		Code string `json:"code"`
		Uses int    `json:"uses"`
	}
	out := run(t, "", "invite", "create", "--repo", pubRepo, "--uses", "1", "--note", "hi")
	if err := json.Unmarshal(out, &created); err != nil || created.Uses != 1 || !strings.Contains(created.Code, ":"+pub.id+"~") {
		t.Fatalf("invite create printed %s (%v)", out, err)
	}
	out = run(t, "", "invite", "accept", "--repo", freshRepo, created.Code)
	if !strings.Contains(string(out), `"connected":true`) || !strings.Contains(string(out), `"pub":"`+pub.id+`"`) {
		t.Fatalf("invite accept printed %s", out)
	}
	run(t, "", "publish", "--repo", pubRepo, "--text", "welcome")
	eventually(t, "the invitee to get the pub's post", func() bool {
		return strings.Contains(string(run(t, "", "hist", "--repo", freshRepo, pub.id)), `"text":"welcome"`)
	})
	eventually(t, "the pub to get the invitee's follow and pub message", func() bool {
		h := string(run(t, "", "hist", "--repo", pubRepo, fresh.id))
		return strings.Contains(h, `"autofollow":true`) && strings.Contains(h, `"type":"pub"`)
	})

	if _, code, stderr := runCode(t, "", "invite", "accept", "--repo", lateRepo, created.Code); code != 1 || !strings.Contains(stderr, "invite not accepted") {
		t.Fatalf("a used invite: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{
		{"invite", "create", "--repo", pubRepo, "--uses", "0"},
		{"invite", "accept", "--repo", freshRepo, "not-a-code"},
		{"invite", "accept", "--repo", freshRepo},
	} {
		if _, code, stderr := runCode(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d (%s), want 2", args, code, stderr)
		}
	}
}
