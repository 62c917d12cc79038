package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
)

// fixturePath is the committed sample of 5,000 messages by 50 authors.
const fixturePath = "../../testdata/fixtures/messages.jsonl.gz"

// fixture is the sample as read independently of the code under test
// (encoding/json only): its lines, record keys and authors.
type fixture struct {
	lines   []string
	keys    []string
	authors map[string]bool
}

func readFixture(t testing.TB) fixture {
	t.Helper()
	f, err := os.Open(fixturePath)
	if err != nil {
		t.Fatalf("open fixture: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("gunzip fixture: %v", err)
	}
	fx := fixture{authors: map[string]bool{}}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Key   string `json:"key"`
			Value struct {
				Author string `json:"author"`
			} `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("fixture line %d: %v", len(fx.lines)+1, err)
		}
		fx.lines = append(fx.lines, sc.Text())
		fx.keys = append(fx.keys, rec.Key)
		fx.authors[rec.Value.Author] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if len(fx.lines) == 0 {
		t.Fatal("fixture is empty")
	}
	return fx
}

// buildSbot compiles the command into a temporary directory of t.
func buildSbot(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "sbot")
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cliResult is what one run of the binary produced.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs bin with args; env entries are added to a clean environment
// whose HOME is a temporary directory (so ~/.ssb-go is never touched).
func runCLI(t *testing.T, bin string, stdin io.Reader, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// jsonLines decodes every stdout line; the last one is the summary.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %d is not a JSON object: %v: %q", i+1, err, l)
		}
		out = append(out, m)
	}
	return out
}

// verifySummary extracts verify's last output line.
func verifySummary(t *testing.T, lines []map[string]any) summary {
	t.Helper()
	if len(lines) == 0 {
		t.Fatal("no output")
	}
	b, _ := json.Marshal(lines[len(lines)-1])
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// testFeed is a feed signed in the test.
type testFeed struct {
	kp   feeds.KeyPair
	msgs []*classic.Message // msgs[i] has sequence i+1
}

func newTestFeed(t testing.TB, seed byte, n int) *testFeed {
	t.Helper()
	kp, err := feeds.KeyPairFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &testFeed{kp: kp}
	for i := 0; i < n; i++ {
		f.next(t, fmt.Sprintf("message %d of feed %d", i+1, seed))
	}
	return f
}

// next appends a valid message with a post of text.
func (f *testFeed) next(t testing.TB, text string) *classic.Message {
	t.Helper()
	var st *classic.FeedState
	if n := len(f.msgs); n > 0 {
		s := classic.StateAfter(f.msgs[n-1])
		st = &s
	}
	m := f.create(t, st, text)
	f.msgs = append(f.msgs, m)
	return m
}

// create signs a message after state st without adding it to the feed.
func (f *testFeed) create(t testing.TB, st *classic.FeedState, text string) *classic.Message {
	t.Helper()
	ts := 1_600_000_000_000.0
	if st != nil {
		ts = st.Timestamp + 1000
	}
	m, err := classic.Create(f.kp.Private, st, ts, map[string]any{"type": "post", "text": text}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seq returns message number n (1-based).
func (f *testFeed) seq(n int) *classic.Message { return f.msgs[n-1] }

// record is the {"key","value","timestamp"} line of m.
func record(m *classic.Message) string {
	return fmt.Sprintf(`{"key":%q,"value":%s,"timestamp":1700000000000}`, m.Key.String(), m.Compact)
}

// bare is the bare value line of m.
func bare(m *classic.Message) string { return string(m.Compact) }

// tampered returns the record line of value (the compact JSON of a
// message changed after signing), with the key recomputed so the record
// itself is consistent and only the signature can fail.
func tampered(t testing.TB, value string) string {
	t.Helper()
	m, err := classic.Parse([]byte(value))
	if err != nil {
		t.Fatalf("tampered value does not parse: %v", err)
	}
	return fmt.Sprintf(`{"key":%q,"value":%s,"timestamp":1700000000000}`, m.Key.String(), value)
}

// flipSig returns the record of m with one bit of its signature flipped.
func flipSig(t testing.TB, m *classic.Message) string {
	t.Helper()
	sig := base64.StdEncoding.EncodeToString(m.Signature[:])
	raw := m.Signature
	raw[10] ^= 0x04
	bad := base64.StdEncoding.EncodeToString(raw[:])
	v := strings.Replace(string(m.Compact), sig, bad, 1)
	if v == string(m.Compact) {
		t.Fatal("signature not found in the value")
	}
	return tampered(t, v)
}

// changeText returns the record of m with its text changed after signing.
func changeText(t testing.TB, m *classic.Message, from, to string) string {
	t.Helper()
	v := strings.Replace(string(m.Compact), from, to, 1)
	if v == string(m.Compact) {
		t.Fatalf("%q not found in the value", from)
	}
	return tampered(t, v)
}

func writeLines(t testing.TB, dir, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeGzip(t testing.TB, dir, name string, lines []string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(strings.Join(lines, "\n") + "\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantIssue is one expected invalid-message line: its line number and a
// piece of its error text.
type wantIssue struct {
	file  string // base name; only checked when set
	line  int
	error string
}

// checkIssues compares the issue lines of out (all but the summary) with
// want, in order.
func checkIssues(t *testing.T, lines []map[string]any, want []wantIssue) {
	t.Helper()
	got := lines[:len(lines)-1]
	if len(got) != len(want) {
		t.Fatalf("%d issue lines, want %d:\n%v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if line, _ := g["line"].(float64); int(line) != w.line {
			t.Errorf("issue %d: line %v, want %d (%v)", i, g["line"], w.line, g)
		}
		if e, _ := g["error"].(string); !strings.Contains(e, w.error) {
			t.Errorf("issue %d (line %d): error %q does not contain %q", i, w.line, e, w.error)
		}
		if w.file != "" {
			if f, _ := g["file"].(string); filepath.Base(f) != w.file {
				t.Errorf("issue %d: file %q, want %q", i, f, w.file)
			}
		}
	}
}

func TestVerifyCLI(t *testing.T) {
	bin := buildSbot(t)
	fx := readFixture(t)
	dir := t.TempDir()
	gz, err := filepath.Abs(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	plain := writeLines(t, dir, "fixture.jsonl", fx.lines)
	split := len(fx.lines) * 2 / 5
	part1 := writeLines(t, dir, "part1.jsonl", fx.lines[:split])
	part2 := writeGzip(t, dir, "part2.jsonl.gz", fx.lines[split:])
	gzBytes, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	allValid := summary{Messages: len(fx.lines), Valid: len(fx.lines), Feeds: len(fx.authors)}

	t.Run("valid inputs", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			stdin []byte
			args  []string
			want  summary
		}{
			{"gzip file", nil, []string{gz}, allValid},
			{"plain file", nil, []string{plain}, allValid},
			{"gzip on stdin", gzBytes, []string{"-"}, allValid},
			{"plain on stdin", []byte(strings.Join(fx.lines, "\n")), []string{"-"}, allValid},
			// The feeds continue from the first file into the second.
			{"two files", nil, []string{part1, part2}, allValid},
			{"second half alone: feeds start mid-way", nil, []string{part2},
				summary{Messages: len(fx.lines) - split, Valid: len(fx.lines) - split, Feeds: distinctAuthors(t, fx.lines[split:])}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := runCLI(t, bin, bytes.NewReader(tc.stdin), nil, append([]string{"verify"}, tc.args...)...)
				if res.code != 0 {
					t.Fatalf("exit %d, want 0; stderr: %s", res.code, res.stderr)
				}
				lines := jsonLines(t, res.stdout)
				if len(lines) != 1 {
					t.Fatalf("%d output lines, want only the summary: %s", len(lines), res.stdout)
				}
				if got := verifySummary(t, lines); got != tc.want {
					t.Errorf("summary %+v, want %+v", got, tc.want)
				}
			})
		}
	})

	t.Run("ids", func(t *testing.T) {
		res := runCLI(t, bin, nil, nil, "verify", "--ids", gz)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		lines := jsonLines(t, res.stdout)
		if len(lines) != len(fx.keys)+1 {
			t.Fatalf("%d lines, want %d ids + summary", len(lines), len(fx.keys))
		}
		for i, k := range fx.keys {
			l := lines[i]
			if l["id"] != k || l["line"] != float64(i+1) {
				t.Fatalf("line %d: %v, want id %s line %d", i+1, l, k, i+1)
			}
			if _, ok := l["file"]; ok {
				t.Fatalf("one input file, but line %d names its file: %v", i+1, l)
			}
		}
		if got := verifySummary(t, lines); got != allValid {
			t.Errorf("summary %+v, want %+v", got, allValid)
		}
	})

	t.Run("ids over two files", func(t *testing.T) {
		res := runCLI(t, bin, nil, nil, "verify", "--ids", part1, part2)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		lines := jsonLines(t, res.stdout)
		if len(lines) != len(fx.keys)+1 {
			t.Fatalf("%d lines, want %d", len(lines), len(fx.keys)+1)
		}
		for i, k := range fx.keys {
			wantFile, wantLine := part1, i+1
			if i >= split {
				wantFile, wantLine = part2, i-split+1
			}
			l := lines[i]
			if l["id"] != k || l["line"] != float64(wantLine) || l["file"] != wantFile {
				t.Fatalf("message %d: %v, want id %s file %s line %d", i+1, l, k, wantFile, wantLine)
			}
		}
	})

	t.Run("invalid messages", func(t *testing.T) {
		a := newTestFeed(t, 1, 6)
		b := newTestFeed(t, 2, 4)
		// a3 signed properly but with a1 as previous: a fork.
		fork := a.create(t, &classic.FeedState{Key: a.seq(1).Key, Sequence: 2, Timestamp: a.seq(2).Timestamp}, "forked")
		for _, tc := range []struct {
			name   string
			lines  []string
			issues []wantIssue
			want   summary
		}{
			{
				name: "flipped signature bit; the feed goes on from the last valid message",
				lines: []string{record(a.seq(1)), record(a.seq(2)), flipSig(t, a.seq(3)), record(b.seq(1)),
					record(a.seq(4)), record(a.seq(3)), record(a.seq(4))},
				issues: []wantIssue{{line: 3, error: "signature"}, {line: 5, error: "expected sequence 3 but got 4"}},
				want:   summary{Messages: 7, Valid: 5, Invalid: 2, Feeds: 2},
			},
			{
				name:   "content changed after signing",
				lines:  []string{record(a.seq(1)), changeText(t, a.seq(2), "message 2", "message X"), record(a.seq(2)), record(a.seq(3))},
				issues: []wantIssue{{line: 2, error: "signature"}},
				want:   summary{Messages: 4, Valid: 3, Invalid: 1, Feeds: 1},
			},
			{
				name: "content changed, record key kept",
				lines: []string{record(a.seq(1)),
					fmt.Sprintf(`{"key":%q,"value":%s}`, a.seq(2).Key.String(), strings.Replace(bare(a.seq(2)), "message 2", "message X", 1))},
				issues: []wantIssue{{line: 2, error: "does not match"}},
				want:   summary{Messages: 2, Valid: 1, Invalid: 1, Feeds: 1},
			},
			{
				name:   "wrong previous (fork), then the real chain",
				lines:  []string{record(a.seq(1)), record(a.seq(2)), record(fork), record(a.seq(3)), record(a.seq(4))},
				issues: []wantIssue{{line: 3, error: "fork"}},
				want:   summary{Messages: 5, Valid: 4, Invalid: 1, Feeds: 1},
			},
			{
				name:   "duplicate line",
				lines:  []string{record(a.seq(1)), record(a.seq(2)), record(a.seq(2)), record(a.seq(3))},
				issues: []wantIssue{{line: 3, error: "expected sequence 3 but got 2"}},
				want:   summary{Messages: 4, Valid: 3, Invalid: 1, Feeds: 1},
			},
			{
				name:   "malformed JSON line; blank lines count",
				lines:  []string{record(a.seq(1)), "", `{"key": "%abc", "value": {`, "", record(a.seq(2))},
				issues: []wantIssue{{line: 3, error: "not valid JSON"}},
				want:   summary{Messages: 3, Valid: 2, Invalid: 1, Feeds: 1},
			},
			{
				name:   "bare values are messages; a bare non-object is not",
				lines:  []string{bare(a.seq(1)), record(a.seq(2)), `[1,2,3]`, bare(a.seq(3)), `"text"`},
				issues: []wantIssue{{line: 3, error: "must be an object"}, {line: 5, error: "must be an object"}},
				want:   summary{Messages: 5, Valid: 3, Invalid: 2, Feeds: 1},
			},
			{
				name:  "feed starting at sequence 3 is checked from there",
				lines: []string{record(a.seq(3)), record(a.seq(4)), record(b.seq(1)), record(a.seq(6)), record(fork)},
				issues: []wantIssue{
					{line: 4, error: "expected sequence 5 but got 6"},
					// fork (sequence 3) is after a4 now: a duplicate sequence.
					{line: 5, error: "expected sequence 5 but got 3"},
				},
				want: summary{Messages: 5, Valid: 3, Invalid: 2, Feeds: 2},
			},
			{
				name:   "feed starting at sequence 4 whose first message is bad",
				lines:  []string{flipSig(t, a.seq(4)), record(a.seq(5))},
				issues: []wantIssue{{line: 1, error: "signature"}, {line: 2, error: "expected sequence 4 but got 5"}},
				want:   summary{Messages: 2, Valid: 0, Invalid: 2, Feeds: 1},
			},
			{
				name:   "feed starting at sequence 2, then its earlier messages",
				lines:  []string{record(b.seq(1)), record(a.seq(2)), record(a.seq(1)), record(a.seq(2))},
				issues: []wantIssue{{line: 3, error: "expected sequence 3 but got 1"}, {line: 4, error: "expected sequence 3 but got 2"}},
				want:   summary{Messages: 4, Valid: 2, Invalid: 2, Feeds: 2},
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := writeLines(t, t.TempDir(), "in.jsonl", tc.lines)
				res := runCLI(t, bin, nil, nil, "verify", p)
				wantCode := 0
				if tc.want.Invalid > 0 {
					wantCode = 1
				}
				if res.code != wantCode {
					t.Fatalf("exit %d, want %d; stderr %s", res.code, wantCode, res.stderr)
				}
				lines := jsonLines(t, res.stdout)
				checkIssues(t, lines, tc.issues)
				if got := verifySummary(t, lines); got != tc.want {
					t.Errorf("summary %+v, want %+v", got, tc.want)
				}
			})
		}
	})

	t.Run("issue in the second of two files", func(t *testing.T) {
		a := newTestFeed(t, 3, 4)
		d := t.TempDir()
		f1 := writeLines(t, d, "one.jsonl", []string{record(a.seq(1)), record(a.seq(2))})
		f2 := writeGzip(t, d, "two.jsonl.gz", []string{record(a.seq(3)), flipSig(t, a.seq(4))})
		res := runCLI(t, bin, nil, nil, "verify", f1, f2)
		if res.code != 1 {
			t.Fatalf("exit %d, want 1: %s", res.code, res.stderr)
		}
		lines := jsonLines(t, res.stdout)
		checkIssues(t, lines, []wantIssue{{file: "two.jsonl.gz", line: 2, error: "signature"}})
		if got, want := verifySummary(t, lines), (summary{Messages: 4, Valid: 3, Invalid: 1, Feeds: 1}); got != want {
			t.Errorf("summary %+v, want %+v", got, want)
		}
	})

	t.Run("usage and unreadable input", func(t *testing.T) {
		truncated := filepath.Join(dir, "truncated.gz")
		if err := os.WriteFile(truncated, gzBytes[:len(gzBytes)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			args   []string
			stderr string
		}{
			{"no arguments", []string{"verify"}, "no input files"},
			{"unknown flag", []string{"verify", "--bogus", plain}, "unknown flag"},
			{"missing file", []string{"verify", filepath.Join(dir, "nope.jsonl")}, "no such file"},
			{"missing second file", []string{"verify", plain, filepath.Join(dir, "nope.jsonl")}, "nope.jsonl"},
			{"directory", []string{"verify", dir}, "directory"},
			{"stdin twice", []string{"verify", "-", "-"}, "more than once"},
			{"truncated gzip", []string{"verify", truncated}, "truncated.gz"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := runCLI(t, bin, strings.NewReader(""), nil, tc.args...)
				if res.code != 2 {
					t.Fatalf("exit %d, want 2; stdout %q stderr %q", res.code, res.stdout, res.stderr)
				}
				if !strings.Contains(res.stderr, tc.stderr) {
					t.Errorf("stderr %q does not mention %q", res.stderr, tc.stderr)
				}
				if strings.Contains(res.stdout, `"messages"`) {
					t.Errorf("a failed run printed a summary: %s", res.stdout)
				}
			})
		}
	})
}

func distinctAuthors(t *testing.T, lines []string) int {
	t.Helper()
	seen := map[string]bool{}
	for _, l := range lines {
		var rec struct {
			Value struct {
				Author string `json:"author"`
			} `json:"value"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		seen[rec.Value.Author] = true
	}
	return len(seen)
}

// TestRunVerifyInProcess drives runVerify directly (so the race detector
// sees the reader, parser and verifier goroutines) with small chunks of
// many feeds.
func TestRunVerifyInProcess(t *testing.T) {
	var lines []string
	var fs []*testFeed
	for s := byte(10); s < 16; s++ {
		fs = append(fs, newTestFeed(t, s, 20))
	}
	for i := 0; i < 20; i++ {
		for _, f := range fs {
			lines = append(lines, record(f.msgs[i]))
		}
	}
	bad := 37 // 0-based index of the line to break
	lines[bad] = flipSig(t, fs[bad%len(fs)].msgs[bad/len(fs)])
	var out bytes.Buffer
	err := runVerify(context.Background(), &out, strings.NewReader(strings.Join(lines, "\n")), []string{"-"}, false)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("runVerify: %v, want exit status 1", err)
	}
	got := jsonLines(t, out.String())
	// Every later message of the broken feed fails too.
	wantInvalid := 0
	for i := bad; i < len(lines); i += len(fs) {
		wantInvalid++
	}
	if s := verifySummary(t, got); s != (summary{Messages: len(lines), Valid: len(lines) - wantInvalid, Invalid: wantInvalid, Feeds: len(fs)}) {
		t.Errorf("summary %+v, want %d invalid of %d", s, wantInvalid, len(lines))
	}
	if got[0]["line"] != float64(bad+1) {
		t.Errorf("first issue at line %v, want %d", got[0]["line"], bad+1)
	}

	// A cancelled context stops the run with an error instead of a report.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out.Reset()
	if err := runVerify(ctx, &out, strings.NewReader(strings.Join(lines, "\n")), []string{"-"}, false); err == nil || errors.As(err, &ee) && ee.code == 1 {
		t.Errorf("cancelled runVerify returned %v", err)
	}
}

// BenchmarkVerifyFixture measures verify throughput on the fixture sample
// (gzip, 5,000 messages of 50 feeds), output discarded.
func BenchmarkVerifyFixture(b *testing.B) {
	fx := readFixture(b)
	path, err := filepath.Abs(fixturePath)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := runVerify(context.Background(), io.Discard, nil, []string{path}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(fx.lines))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// FuzzVerifyInput feeds arbitrary input to verify on stdin: it must never
// panic, and either report the input unreadable (exit status 2) or print
// one line per message (--ids) and a summary that adds up.
func FuzzVerifyInput(f *testing.F) {
	a := newTestFeed(f, 30, 3)
	f.Add([]byte(record(a.seq(1)) + "\n" + record(a.seq(2)) + "\n"))
	f.Add([]byte(bare(a.seq(1)) + "\n\n" + flipSig(f, a.seq(2)) + "\n" + record(a.seq(3))))
	f.Add([]byte(record(a.seq(2)) + "\n" + record(a.seq(3)) + "\n[1]\n{\"key\":"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(record(a.seq(1)) + "\n"))
	zw.Close()
	f.Add(gz.Bytes())
	f.Add([]byte{0x1f, 0x8b, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		err := runVerify(context.Background(), &out, bytes.NewReader(data), []string{"-"}, true)
		var ee *exitError
		if err != nil && (!errors.As(err, &ee) || ee.code != 1) {
			if errors.As(err, &ee) && ee.code == 2 {
				return // unreadable input (bad gzip, line too long)
			}
			t.Fatalf("runVerify: %v", err)
		}
		lines := jsonLines(t, out.String())
		s := verifySummary(t, lines)
		if s.Messages != s.Valid+s.Invalid || len(lines) != s.Messages+1 {
			t.Fatalf("summary %+v with %d output lines", s, len(lines))
		}
		if (s.Invalid > 0) != (err != nil) {
			t.Fatalf("summary %+v but error %v", s, err)
		}
	})
}
