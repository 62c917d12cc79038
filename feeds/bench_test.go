package feeds

import "testing"

// Ref parsing and printing run for every message decoded during sync.

func BenchmarkParseFeedRef(b *testing.B) {
	s := "@" + aliceB64 + ".ed25519"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFeedRef(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMessageRef(b *testing.B) {
	s := "%" + msgB64 + ".sha256"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMessageRef(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFeedRefString(b *testing.B) {
	r, err := ParseFeedRef("@" + aliceB64 + ".ed25519")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(r.String()) != 53 {
			b.Fatal("bad length")
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	inputs := []string{"@" + aliceB64 + ".ed25519", "%" + msgB64 + ".sha256", "net:example.org:8008~shs:" + aliceB64, "hello world"}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range inputs {
			Classify(s)
		}
	}
}

func BenchmarkExtract(b *testing.B) {
	s := "a post mentioning [@alice](@" + aliceB64 + ".ed25519) and more text around it"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Extract(s); !ok {
			b.Fatal("not found")
		}
	}
}
