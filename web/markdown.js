/*!
 * Kefu Markdown: renders the safe subset of Markdown that assistants write (bold, italics,
 * inline code, code blocks, paragraphs and line breaks, bulleted and numbered lists, headings
 * shown as bold lines, rules, links) as DOM nodes built with createElement/createTextNode.
 * It never parses HTML: "<b>" or "<script>" in the text stays text. Links: http, https and
 * mailto only, opened with target=_blank rel="noopener noreferrer"; any other scheme is text.
 * An emphasis or link that is not closed yet (a reply still streaming) stays text.
 *
 * web/markdown.js is the source (the agent console loads it); web/widget.js carries the same
 * code between "markdown.js begin/end" markers so the widget stays one file (a unit test checks
 * that both copies are identical). Design: docs/design-notes.md.
 */
var KefuMarkdown = (function () {
  "use strict";
  var MAX_DEPTH = 6;                                  // nested emphasis/links deeper than this: text
  var MAX_DEST = 2048;                                // longest link destination looked at
  var WORD = /[\p{L}\p{N}]/u;
  var SPACE = /\s/;
  var ESCAPABLE = /[!-\/:-@\[-`{-~]/;                 // ASCII punctuation: "\*" is a literal "*"
  var BARE_URL = /https?:\/\/[A-Za-z0-9\-._~:\/?#\[\]@!$&'()*+,;=%]+/y;
  var FENCE = /^ {0,3}(`{3,}|~{3,})/;
  var FENCE_END = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
  var HEADING = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
  var RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  var ITEM = /^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;

  function safeHref(raw) {
    var url = raw.trim();
    if (url.charAt(0) === "<" && url.charAt(url.length - 1) === ">") url = url.slice(1, -1);
    if (!/^(https?:\/\/|mailto:)/i.test(url)) return null;
    try { url = new URL(url); } catch (e) { return null; }
    return /^(https?|mailto):$/.test(url.protocol) ? url.href : null;
  }

  function count(s, ch) { return s.split(ch).length - 1; }
  function trimUrl(url) {
    url = url.replace(/[.,;:!?'"*_~]+$/, "");
    var last = url.slice(-1);
    if ((last === ")" && count(url, "(") < count(url, ")")) ||
        (last === "]" && count(url, "[") < count(url, "]"))) url = url.slice(0, -1);
    return url;
  }

  function runLength(s, i, ch) { var k = i; while (s.charAt(k) === ch) k++; return k - i; }

  // The position of the delimiter (ch repeated len times) closing an emphasis opened before
  // `from`, or -1. A closer follows a non-space character and is not escaped; "_" closers are
  // not followed by a letter or digit (snake_case stays text).
  function findCloser(s, from, ch, len) {
    for (var k = from; k < s.length; k++) {
      if (s.charAt(k) !== ch) continue;
      var run = runLength(s, k, ch);
      var prev = s.charAt(k - 1);
      if (k > from && !SPACE.test(prev) && prev !== "\\" && run !== (len === 1 ? 2 : 1)) {
        var at = len === 2 ? k + run - 2 : (run === 1 ? k : k + run - 1);
        if (ch !== "_" || !WORD.test(s.charAt(at + len))) return at;
      }
      k += run - 1;
    }
    return -1;
  }

  // Appends the inline content of `s` to `parent`. `none` remembers searches that failed, so
  // that unclosed delimiters cost one scan each (no quadratic time on hostile text).
  function inline(doc, s, parent, depth, inLink) {
    var buf = "", i = 0, none = {};
    function flush() {
      var parts = buf.split("\n");
      for (var k = 0; k < parts.length; k++) {
        if (k) parent.appendChild(doc.createElement("br"));
        if (parts[k]) parent.appendChild(doc.createTextNode(parts[k]));
      }
      buf = "";
    }
    function node(tag, inner) {
      flush();
      var e = doc.createElement(tag);
      if (inner != null) inline(doc, inner, e, depth + 1, inLink || tag === "a");
      parent.appendChild(e);
      return e;
    }
    while (i < s.length) {
      var c = s.charAt(i), end, run;
      if (c === "\\" && ESCAPABLE.test(s.charAt(i + 1))) { buf += s.charAt(i + 1); i += 2; continue; }
      if (c === "`") {
        run = runLength(s, i, "`");
        end = none["`" + run] ? -1 : s.indexOf(s.substr(i, run), i + run);
        while (end >= 0 && runLength(s, end, "`") !== run) end = s.indexOf(s.substr(i, run), end + runLength(s, end, "`"));
        if (end < 0) { none["`" + run] = true; buf += s.substr(i, run); i += run; continue; }
        var code = s.slice(i + run, end);
        if (/^ [\s\S]*[^ ][\s\S]* $/.test(code)) code = code.slice(1, -1);
        node("code").textContent = code;
        i = end + run;
        continue;
      }
      if ((c === "*" || c === "_") && depth < MAX_DEPTH) {
        run = runLength(s, i, c);
        var left = c !== "_" || !WORD.test(s.charAt(i - 1));
        var len = run >= 2 ? 2 : 1;
        for (; len >= 1 && left; len--) {
          var key = c + len;
          if (none[key] || !s.charAt(i + len) || SPACE.test(s.charAt(i + len))) continue;
          end = findCloser(s, i + len, c, len);
          if (end < 0) { none[key] = true; continue; }
          node(len === 2 ? "strong" : "em", s.slice(i + len, end));
          i = end + len;
          break;
        }
        if (len < 1 || !left) { buf += c; i++; }
        continue;
      }
      if (c === "[" && !inLink && depth < MAX_DEPTH && !none["]"]) {
        var close = s.indexOf("]", i + 1);
        if (close < 0) none["]"] = true;
        else if (close > i + 1 && s.charAt(close + 1) === "(") {
          var open = 0, k = close + 2, stop = Math.min(s.length, k + MAX_DEST);
          for (end = -1; k < stop && s.charAt(k) !== "\n"; k++) {
            if (s.charAt(k) === "\\") k++;
            else if (s.charAt(k) === "(") open++;
            else if (s.charAt(k) === ")" && open-- === 0) { end = k; break; }
          }
          if (end > 0) {
            var href = safeHref(s.slice(close + 2, end).trim().split(/\s+/)[0] || "");
            if (href) {
              var a = node("a", s.slice(i + 1, close));
              a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
            } else {
              buf += s.slice(i, end + 1);              // not a scheme we link to: shown as text
            }
            i = end + 1;
            continue;
          }
        }
      }
      if (c === "h" && !inLink && !WORD.test(s.charAt(i - 1))) {
        BARE_URL.lastIndex = i;
        var m = BARE_URL.exec(s);
        if (m) {
          var url = m[0], trimmed;
          // Trailing punctuation ends the sentence, not the address; so does an unmatched ")".
          while ((trimmed = trimUrl(url)) !== url) url = trimmed;
          var bare = safeHref(url);
          if (bare && url.length > 8) {
            var link = node("a");
            link.textContent = url; link.href = bare; link.target = "_blank"; link.rel = "noopener noreferrer";
            i += url.length;
            continue;
          }
        }
      }
      buf += c;
      i++;
    }
    flush();
  }

  function indentOf(line) { return line.match(/^[ \t]*/)[0].replace(/\t/g, "    ").length; }

  function render(text, doc) {
    doc = doc || document;
    var frag = doc.createDocumentFragment();
    var lines = String(text == null ? "" : text).replace(/\r\n?/g, "\n").split("\n");
    var para = null, lists = [], fence = null, blank = false;
    function el(tag, parent) { var e = doc.createElement(tag); (parent || frag).appendChild(e); return e; }
    function closePara() { if (para) { inline(doc, para.join("\n"), el("p"), 0, false); para = null; } }
    function flushItem(top) {
      while (top.lines.length && !top.lines[top.lines.length - 1]) top.lines.pop();
      if (top.lines.length) {
        if (top.li.firstChild) top.li.appendChild(doc.createElement("br"));
        inline(doc, top.lines.join("\n"), top.li, 0, false);
      }
      top.lines = [];
    }
    function closeFence() { if (fence) { fence.code.textContent = fence.lines.join("\n"); fence = null; } }
    function closeLists(level) { while (lists.length > level) flushItem(lists.pop()); }
    function openList(parent, indent, ordered, number) {
      var list = el(ordered ? "ol" : "ul", parent);
      if (ordered && number !== 1) list.setAttribute("start", String(number));
      var entry = { indent: indent, ordered: ordered, list: list, li: null, lines: [] };
      lists.push(entry);
      return entry;
    }
    for (var n = 0; n < lines.length; n++) {
      var line = lines[n], m;
      if (fence) {
        m = FENCE_END.exec(line);
        if (m && m[1].charAt(0) === fence.mark.charAt(0) && m[1].length >= fence.mark.length) closeFence();
        else fence.lines.push(line);
        continue;
      }
      if (!line.trim()) { closePara(); blank = true; continue; }
      var indent = indentOf(line), top = lists[lists.length - 1];
      if ((m = FENCE.exec(line))) {
        closePara();
        var inItem = top && indent >= top.indent + 2;
        if (inItem) flushItem(top); else closeLists(0);
        var pre = el("pre", inItem ? top.li : frag);
        fence = { mark: m[1], code: el("code", pre), lines: [] };
        blank = false;
        continue;
      }
      if (RULE.test(line)) { closePara(); closeLists(0); el("hr"); blank = false; continue; }
      if ((m = HEADING.exec(line))) {
        closePara(); closeLists(0);
        inline(doc, m[1], el("strong", el("p")), 0, false);
        blank = false;
        continue;
      }
      if ((m = ITEM.exec(line))) {
        closePara();
        var ordered = /\d/.test(m[2]), number = ordered ? parseInt(m[2], 10) : 1;
        while (lists.length && indent < lists[lists.length - 1].indent) flushItem(lists.pop());
        top = lists[lists.length - 1];
        var entry;
        if (top && indent >= top.indent + 2 && top.li) {
          flushItem(top);
          entry = openList(top.li, indent, ordered, number);
        } else if (top && top.ordered === ordered) {
          flushItem(top);
          entry = top;
        } else {
          var parent = top ? top.list.parentNode : frag;
          if (top) flushItem(lists.pop());
          entry = openList(parent, indent, ordered, number);
        }
        entry.li = el("li", entry.list);
        entry.lines = [m[3]];
        blank = false;
        continue;
      }
      if (top && (!blank || indent >= top.indent + 2)) {
        if (blank) top.lines.push("");
        top.lines.push(line.replace(/^[ \t]+/, ""));
        blank = false;
        continue;
      }
      closeLists(0);
      (para = para || []).push(line.replace(/^[ \t]+/, ""));
      blank = false;
    }
    closeFence();
    closePara();
    closeLists(0);
    return frag;
  }

  return { render: render };
})();
