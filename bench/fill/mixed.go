package fill

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/privatebox"
)

// MsgID is a deterministic message id in sigil form standing for an
// author's message seq (the ids are well formed; they need not exist).
func MsgID(author int, seq int64) string {
	h := sha256.Sum256([]byte("msg/" + strconv.Itoa(author) + "/" + strconv.FormatInt(seq, 10)))
	return "%" + base64.StdEncoding.EncodeToString(h[:]) + ".sha256"
}

// Mixed returns a Content function for a realistic mix of message types,
// per twenty messages of a feed: 9 posts (Post), 3 replies (root, branch,
// a mention of another feed), 3 votes, 2 contacts (follow or unfollow),
// 1 about (name and description of itself or another feed), and 2 box1
// private messages: one to reader and its author, one to two other
// authors (which reader cannot open). authors are the writing feeds;
// reader is the feed that opens the first kind (the repo's own key).
func Mixed(authors []feeds.KeyPair, reader feeds.FeedRef) func(author int, seq int64) []byte {
	n := len(authors)
	other := func(author int, seq int64, k int) feeds.FeedRef {
		return authors[(author+int(seq)*7+k)%n].ID
	}
	earlier := func(author int, seq, back int64) string {
		return MsgID((author+int(back))%n, max(1, seq-back))
	}
	return func(author int, seq int64) []byte {
		switch seq % 20 {
		case 1, 5, 12:
			root := earlier(author, seq, 3+seq%11)
			return fmt.Appendf(nil, `{"type":"post","text":"reply %d from %d","root":%q,"branch":[%q],"mentions":[{"link":%q,"name":"friend"}]}`,
				seq, author, root, earlier(author, seq, 1+seq%3), other(author, seq, 1).String())
		case 2, 8, 15:
			return fmt.Appendf(nil, `{"type":"vote","vote":{"link":%q,"value":1,"expression":"Like"}}`, earlier(author, seq, 2+seq%5))
		case 3, 17:
			return fmt.Appendf(nil, `{"type":"contact","contact":%q,"following":%t}`, other(author, seq, 2).String(), seq%3 != 0)
		case 6:
			who := authors[author].ID
			if seq%40 == 6 {
				who = other(author, seq, 3)
			}
			return fmt.Appendf(nil, `{"type":"about","about":%q,"name":"name %d/%d","description":"about %d"}`, who.String(), author, seq, seq)
		case 10, 19:
			recps := []feeds.FeedRef{reader, authors[author].ID}
			if seq%20 == 19 {
				recps = []feeds.FeedRef{other(author, seq, 4), other(author, seq, 5)}
			}
			plain := fmt.Appendf(nil, `{"type":"post","text":"secret %d from %d","root":%q,"recps":[%q,%q]}`,
				seq, author, earlier(author, seq, 4), recps[0].String(), recps[1].String())
			ct, err := privatebox.Seal(plain, recps, nil)
			if err != nil {
				panic(fmt.Sprintf("fill: box1 seal: %v", err)) // only on a bad key: the authors are valid
			}
			s, err := json.Marshal(privatebox.BoxContent(ct))
			if err != nil {
				panic(err)
			}
			return s
		}
		return Post(author, seq)
	}
}
