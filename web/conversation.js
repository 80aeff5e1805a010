// The conversation view: one bubble per user turn (by server item id) and per reply (by response id); tool
// cards (tools.js) are placed in it too.

import { formatMs, stageDurations, totalMs } from "./chart.js";

export class Conversation {
  constructor(log, empty) {
    this.log = log; // <ol> of bubbles
    this.empty = empty; // the "Say hello" placeholder
    this.users = new Map(); // item_id -> <li>
    this.replies = new Map(); // response_id -> {el, text, interrupted, cancelled}
  }

  add(role, text, { pending = false } = {}) {
    this.empty.hidden = true;
    const li = document.createElement("li");
    li.className = `msg ${role}`;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    li.append(who, body);
    if (pending) li.classList.add("pending");
    this.log.append(li);
    this.scroll();
    return li;
  }

  // A tool card goes where the model made the call: before its reply's bubble while that is still empty
  // (the words come after the call, or there are none), else at the end.
  place(node, responseId) {
    this.empty.hidden = true;
    const r = responseId ? this.replies.get(responseId) : null;
    if (r && !r.text && r.el.isConnected) this.log.insertBefore(node, r.el);
    else this.log.append(node);
    this.scroll();
  }

  scroll() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  setText(li, text, { pending = false } = {}) {
    li.querySelector(".text").textContent = text;
    li.classList.toggle("pending", pending);
    this.scroll();
  }

  // The bubble of a spoken user turn, created (waiting for its words) on first mention.
  user(itemId) {
    if (itemId && this.users.has(itemId)) return this.users.get(itemId);
    const li = this.add("user", "", { pending: true });
    if (itemId) this.users.set(itemId, li);
    return li;
  }

  // A user turn that turned out to be no words (noise, a cough): remove its empty bubble.
  dropUser(itemId) {
    const li = this.users.get(itemId);
    if (li && !li.querySelector(".text").textContent) li.remove();
    this.users.delete(itemId);
  }

  reply(responseId) {
    let r = this.replies.get(responseId);
    if (!r) {
      r = { el: this.add("assistant", "", { pending: true }), text: "", interrupted: false, cancelled: false };
      this.replies.set(responseId, r);
    }
    return r;
  }

  appendReply(responseId, delta) {
    const r = this.reply(responseId);
    r.text += delta;
    this.setText(r.el, r.text, { pending: true });
  }

  markInterrupted(r) {
    if (!r || r.interrupted) return;
    r.interrupted = true;
    r.el.classList.add("interrupted");
    this.tag(r, "interrupted");
  }

  // A small label beside "Assistant" saying what kind of reply this is.
  tag(r, text, kind = "") {
    const tag = document.createElement("span");
    tag.className = kind ? `tag ${kind}` : "tag";
    tag.textContent = text;
    r.el.querySelector(".who").append(tag);
  }

  attachLatency(responseId, latency) {
    const r = this.replies.get(responseId);
    if (!r) return;
    r.el.querySelector(".lat")?.remove();
    const chip = document.createElement("span");
    chip.className = "lat";
    chip.textContent = `⚡ ${formatMs(totalMs(latency))}`;
    chip.title = stageDurations(latency).map((s) => `${s.label} ${formatMs(s.ms)}`).join(" · ");
    chip.setAttribute("aria-label", `Latency ${formatMs(totalMs(latency))}: ${chip.title}`);
    r.el.querySelector(".who").append(chip);
  }
}
