package roomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cask-ssb/cask/feeds"
)

// Invite is an HTTP invite ready to claim: the code, and where to POST it.
type Invite struct {
	Code   string
	PostTo string
}

// ParseInviteURI reads
// ssb:experimental?action=claim-http-invite&invite=CODE&postTo=URL.
func ParseInviteURI(s string) (Invite, error) {
	q, err := experimentalQuery(s, "claim-http-invite")
	if err != nil {
		return Invite{}, err
	}
	inv := Invite{Code: q.Get("invite"), PostTo: q.Get("postTo")}
	if inv.PostTo == "" && q.Get("multiserverAddress") != "" {
		return Invite{}, errors.New("invite: the URI names no postTo (only a multiserverAddress): open the room's invite link (https://ROOM/join?invite=…) instead")
	}
	return inv, inv.check()
}

// ParseInviteJSON reads the answer of GET https://ROOM/join?invite=CODE&encoding=json:
// {"status":"successful","invite":CODE,"postTo":URL} ("success" too).
func ParseInviteJSON(body []byte) (Invite, error) {
	var f struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Invite string `json:"invite"`
		PostTo string `json:"postTo"`
	}
	if err := json.Unmarshal(body, &f); err != nil {
		return Invite{}, fmt.Errorf("invite: the room's answer is not the invite JSON: %w", err)
	}
	if !isSuccess(f.Status) {
		return Invite{}, fmt.Errorf("invite: the room says %s", describeFailure(f.Status, f.Error))
	}
	inv := Invite{Code: f.Invite, PostTo: f.PostTo}
	return inv, inv.check()
}

func (inv Invite) check() error {
	if inv.Code == "" {
		return errors.New("invite: no invite code")
	}
	u, err := url.Parse(inv.PostTo)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("invite: postTo %q is not an http(s) URL", short(inv.PostTo))
	}
	return nil
}

// ParseClaimJSON reads the answer of the POST to postTo:
// {"status":"successful","multiserverAddress":"net:…~shs:…"} ("success"
// too), or {"status":…,"error":…}.
func ParseClaimJSON(body []byte) (feeds.Address, error) {
	var f struct {
		Status             string `json:"status"`
		Error              string `json:"error"`
		MultiserverAddress string `json:"multiserverAddress"`
	}
	if err := json.Unmarshal(body, &f); err != nil {
		return feeds.Address{}, fmt.Errorf("invite: the room's answer to the claim is not JSON: %w", err)
	}
	if !isSuccess(f.Status) {
		return feeds.Address{}, fmt.Errorf("invite not accepted: the room says %s", describeFailure(f.Status, f.Error))
	}
	a, err := feeds.ParseAddress(f.MultiserverAddress)
	if err != nil {
		return feeds.Address{}, fmt.Errorf("invite: the room's multiserverAddress: %w", err)
	}
	if a.Transport == feeds.TransportTunnel {
		return feeds.Address{}, errors.New("invite: the room's multiserverAddress is a tunnel")
	}
	return a, nil
}

// ResolveInvite reads an invite link: an ssb: URI as it is, an http(s)
// link (https://ROOM/join?invite=CODE) by GETting it with encoding=json.
func ResolveInvite(ctx context.Context, hc *http.Client, link string) (Invite, error) {
	if strings.HasPrefix(link, "ssb:") {
		return ParseInviteURI(link)
	}
	u, err := withJSONEncoding(link)
	if err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	body, err := get(ctx, hc, u)
	if err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	return ParseInviteJSON(body)
}

// Claim POSTs {"id": id, "invite": code} to inv.PostTo and returns the
// room's address from the answer.
func Claim(ctx context.Context, hc *http.Client, inv Invite, id feeds.FeedRef) (feeds.Address, error) {
	body, err := json.Marshal(map[string]string{"id": id.String(), "invite": inv.Code})
	if err != nil {
		return feeds.Address{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, inv.PostTo, bytes.NewReader(body))
	if err != nil {
		return feeds.Address{}, fmt.Errorf("invite: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	answer, err := do(hc, req)
	if err != nil {
		return feeds.Address{}, fmt.Errorf("invite: %w", err)
	}
	return ParseClaimJSON(answer)
}
