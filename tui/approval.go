package tui

import (
	"context"
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
)

// The two-person rule (docs/approvals.md): while a danger step waits for
// another person's approval, the run screen shows who must approve what,
// the exact commands and targets, and the command the approver runs.
type (
	approvalMsg struct {
		wait  engine.ApprovalWait
		reply chan approvalReply
	}
	approvalReply struct {
		abort bool
		by    string
	}
	// approvalClosedMsg: the wait of step ended (approved, or the run
	// stopped): its box goes away.
	approvalClosedMsg struct{ stepID string }
)

var _ engine.ApprovalWaiter = (*Operator)(nil)

// WaitApproval implements engine.ApprovalWaiter: the box stays on screen
// until the approvals came (ctx ends) or the person stops waiting.
func (o *Operator) WaitApproval(ctx context.Context, w engine.ApprovalWait) (bool, string, error) {
	reply := make(chan approvalReply, 1)
	o.bridge.Send(approvalMsg{wait: w, reply: reply})
	select {
	case r := <-reply:
		return r.abort, r.by, nil
	case <-ctx.Done():
		o.bridge.Send(approvalClosedMsg{stepID: w.StepID})
		return false, "", ctx.Err()
	}
}

// approvalPrompt is the box of a step waiting for approval.
type approvalPrompt struct {
	c       *Common
	w       engine.ApprovalWait
	reply   chan approvalReply
	user    string
	granted []state.Person
	refused []engine.Refusal
	stopP   bool // esc pressed once: a second esc aborts
	hint    string
	scrollBox
}

func newApprovalPrompt(c *Common, m approvalMsg, user string) *approvalPrompt {
	return &approvalPrompt{c: c, w: m.wait, reply: m.reply, user: user}
}

const escAgainAbort = "press esc again to stop waiting: the run is aborted (recorded); ctrl+c interrupts instead (resume asks again)"

func (p *approvalPrompt) Update(msg tea.Msg) (tea.Cmd, bool) {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	k := p.c.Keys
	switch {
	case scrollKeys(p.c, km, &p.off, p.page, true):
	case key.Matches(km, k.StopWaiting):
		if p.stopP {
			p.reply <- approvalReply{abort: true, by: p.user}
			return nil, true
		}
		p.stopP, p.hint = true, escAgainAbort
	default:
		p.stopP, p.hint = false, ""
	}
	return nil, false
}

func (p *approvalPrompt) parts(w int) (head, body, foot []string) {
	st := p.c.Styles
	iw := max(10, w-4)
	req := p.w.Request
	title := st.DangerTitle.Render("APPROVAL NEEDED") + st.Danger.Render(" step "+p.w.StepID)
	if p.w.Title != "" {
		title += " — " + clean(p.w.Title)
	}
	head = wrapRows(title, iw, true)
	who := req.Who()
	you := req.Operator.Principal
	if you == "" {
		you = req.Operator.User
	}
	head = append(head, wrapRows(clean(fmt.Sprintf("Waits for approval by %s, not you (%s).", who, you)), iw, true)...)
	body = append(body, st.Bold.Render("This will run:"))
	body = append(body, commandRows(p.c, req.Targets(), commandsOf(req), iw, true)...)
	body = append(body, st.Subtle.Render(clean(fmt.Sprintf("request #%d · commands SHA-256 %.16s…", p.w.RequestSeq, req.CommandsSHA256))))
	foot = append(foot, wrapRows("The approver runs, with their own SSH key:", iw, true)...)
	foot = append(foot, wrapRows(st.Command.Render(clean(p.w.Command)), iw, true)...)
	status := fmt.Sprintf("%d of %d approvals", len(p.granted), req.Approvals)
	for _, g := range p.granted {
		status += " · " + g.Principal
	}
	foot = append(foot, wrapRows(st.Bold.Render(clean(status)), iw, true)...)
	if n := len(p.refused); n > 0 {
		foot = append(foot, wrapRows(st.Hint.Render(clean("refused: "+p.refused[n-1].String())), iw, true)...)
	}
	if p.hint != "" {
		foot = append(foot, wrapRows(st.Hint.Render(p.hint), iw, true)...)
	}
	return head, body, foot
}

func commandsOf(req state.ApprovalRequested) []string {
	out := make([]string, len(req.Commands))
	for i, c := range req.Commands {
		out[i] = c.Command
	}
	return out
}

func (p *approvalPrompt) Want(w int) int { return boxHeight(p.parts(w)) }

func (p *approvalPrompt) View(w, h int) string {
	head, body, foot := p.parts(w)
	return p.draw(p.c, p.c.Styles.DangerBox, w, h, head, body, foot)
}

func (p *approvalPrompt) Cancel() {}

func (p *approvalPrompt) Keys() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.StopWaiting, k.Interrupt, k.BoxScroll}
}
