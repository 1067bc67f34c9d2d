/*!
 * Kefu admin console: the "Personal data" screen (个人数据). A customer's access request
 * (export: the JSON document saved as a file, its summary shown), deletion request (erasure,
 * after the administrator types the id again) and the tenant's retention settings.
 * docs/data-protection.md describes the API; docs/admin-console.md the screen.
 *
 * Loaded before admin.js, which adds it to the navigation (window.KefuAdminScreens) and hands
 * it its helpers (ui). Every value from the server is written with textContent.
 */
(function () {
  "use strict";
  var I18N = {
    zh: {
      privacy: "个人数据",
      privacyHelp: "答复客户的查阅请求（导出其全部数据）和删除请求（清除）。客户以访客 ID（v-…，见对话记录）或已登录客户的 ID（贵公司的客户编号）标识；同一个人匿名与登录时的两个 ID 互不关联，需分别处理。每次导出和清除都记入审计日志。",
      lookup: "查找客户", idKind: "ID 类型", kind_visitor: "访客 ID（v-…）", kind_customer: "客户 ID（已登录）",
      customerRef: "ID", exportData: "导出数据", eraseData: "清除数据…", pickTenant: "租户",
      exported: "已导出 {id}：文件 {file} 已下载", downloadAgain: "再次下载", summary: "摘要",
      n_conversations: "会话", n_messages: "消息", n_notes: "内部备注", n_ratings: "评价", n_offline_messages: "留言",
      n_facts: "长期记忆", n_audit_entries: "审计记录", n_short_term: "短期记忆", n_connections: "在线连接",
      n_cached_replies: "缓存回复", n_crm_cache: "CRM 缓存",
      notIncluded: "不包含：", tooBig: "此客户的历史记录过多，无法在一次请求中导出。请在能访问部署数据库（DATABASE_URL、REDIS_URL）的机器上运行：",
      eraseTitle: "清除 {id} 的全部数据", eraseWarn: "将删除此客户的会话、消息、内部备注、评价、留言、长期记忆、短期记忆和缓存，且无法恢复。审计日志保留“已清除”的记录（不含内容）。",
      typeToConfirm: "请再次输入 ID 以确认", eraseNow: "永久清除", erased: "已清除 {id}", erasedTitle: "清除结果：{id}",
      residual: "其他服务器进程内存中的副本{parts}将在 {s} 秒内过期，之后 Kefu 中不再留有此客户的任何数据。",
      residual_reply_cache: "回复缓存 {s} 秒", residual_crm_cache: "CRM 缓存 {s} 秒",
      eraseFailed: "清除未完成（存储暂不可用）。重试是安全的：已删除的不会重复计算。", retry: "重试",
      eraseNote: "客户的 CRM 记录不在 Kefu 中，请在 CRM 中一并删除。访客令牌在过期（24 小时）前仍有效：若其再次咨询，会产生新数据。",
      retentionTitle: "保留期限", retentionHelp: "超过期限的数据由定时任务自动删除（每小时一次）；修改在下次运行时生效。每项 1–3650 天。审计日志不随保留期限删除。",
      transcriptsDays: "对话记录（天，自最后活动起；默认 365）", factsDays: "长期记忆（天，自最后一次出现起；默认 365）",
      offlineDays: "访客留言（天，自留言起；默认 90）", retentionSuper: "保留期限由各租户的管理员在其管理后台设置。",
      badId: "ID 格式不正确"
    },
    en: {
      privacy: "Personal data",
      privacyHelp: "Answer a customer's access request (export all their data) and deletion request (erase). A customer is named by their visitor id (v-…, as the conversations screen shows it) or, when signed in, by your company's customer id; one person's anonymous and signed-in ids are not linked, so each is handled on its own. Every export and erasure is in the audit log.",
      lookup: "Find a customer", idKind: "Kind of id", kind_visitor: "Visitor id (v-…)", kind_customer: "Customer id (signed in)",
      customerRef: "Id", exportData: "Export data", eraseData: "Erase data…", pickTenant: "Tenant",
      exported: "Exported {id}: {file} downloaded", downloadAgain: "Download again", summary: "Summary",
      n_conversations: "Conversations", n_messages: "Messages", n_notes: "Private notes", n_ratings: "Ratings", n_offline_messages: "Offline messages",
      n_facts: "Long-term facts", n_audit_entries: "Audit entries", n_short_term: "Short-term memory", n_connections: "Live connections",
      n_cached_replies: "Cached replies", n_crm_cache: "CRM cache",
      notIncluded: "Not included:", tooBig: "This customer's history is more than one answer carries. Export it from a machine with the deployment's DATABASE_URL and REDIS_URL:",
      eraseTitle: "Erase everything about {id}", eraseWarn: "Deletes this customer's conversations, messages, private notes, ratings, offline messages, long-term facts, short-term memory and cached data. This cannot be undone. The audit log keeps that they were erased (no content).",
      typeToConfirm: "Type the id again to confirm", eraseNow: "Erase for good", erased: "Erased {id}", erasedTitle: "Erased: {id}",
      residual: "Copies in other server processes' memory{parts} expire within {s} s; after that nothing of this customer is left in Kefu.",
      residual_reply_cache: "reply cache {s} s", residual_crm_cache: "CRM cache {s} s",
      eraseFailed: "The erasure did not complete (a store is unavailable). Retrying is safe: nothing is counted twice.", retry: "Retry",
      eraseNote: "Your CRM's records are not in Kefu: erase them there too. The visitor's token stays valid until it expires (24 h): if they chat again, that is new data.",
      retentionTitle: "Retention", retentionHelp: "Older data is deleted by a scheduled job (hourly); a change applies at its next run. 1 to 3650 days each. The audit log is not deleted by retention.",
      transcriptsDays: "Transcripts (days after the last activity; default 365)", factsDays: "Long-term facts (days after last seen; default 365)",
      offlineDays: "Offline messages (days after they were left; default 90)", retentionSuper: "Each tenant's administrators set its retention in their console.",
      badId: "Not a valid id"
    }
  };
  var PATTERN = { visitor: /^v-[0-9A-Za-z_-]{1,64}$/, customer: /^[\w.@:+-]{1,100}$/ };
  var COUNTS = ["conversations", "messages", "notes", "ratings", "offline_messages", "facts", "audit_entries"];
  var ERASED = ["conversations", "messages", "offline_messages", "facts", "short_term", "connections", "cached_replies", "crm_cache"];

  function render(root, ui) {
    var t = ui.t, el = ui.el, kids = ui.kids, zh = document.documentElement.lang.indexOf("zh") === 0;
    root.appendChild(el("p", "muted", t("privacyHelp")));
    var tenant = null;
    var kind = ui.select("kind", [["visitor", t("kind_visitor")], ["customer", t("kind_customer")]]);
    var id = ui.input("customer"); id.required = true; id.maxLength = 100; id.autocomplete = "off"; id.spellcheck = false;
    id.addEventListener("change", function () {  // a pasted id chooses its kind
      var v = id.value.trim();
      if (v.indexOf("cust:") === 0) { id.value = v.slice(5); kind.value = "customer"; }
      else if (/^v-[0-9a-f]{32}$/.test(v)) kind.value = "visitor";
    });
    var controls = [ui.field("idKind", kind), ui.field("customerRef", id),
                    ui.button("eraseData", "danger", function () { if (valid()) askErase(ref()); })];
    if (ui.isSuper()) {
      tenant = ui.select("tenant", []); tenant.required = true;
      controls.unshift(ui.field("pickTenant", tenant));
      ui.call("GET", "/v1/tenants").then(function (all) {
        all.forEach(function (x) { var o = el("option", null, x.id + " · " + x.name); o.value = x.id; tenant.appendChild(o); });
      }).catch(ui.fail);
    }
    var lookup = ui.section(root, "lookup");
    lookup.id = "privacy-lookup";
    var result = el("div"); result.id = "privacy-result";
    kids(lookup, [ui.form("inline", controls, "exportData", function () { if (valid()) exportData(ref()); }), result]);
    if (ui.isSuper()) ui.section(root, "retentionTitle").appendChild(el("p", "muted", t("retentionSuper")));
    else retention(ui.section(root, "retentionTitle"), ui);

    function ref() {
      var r = { kind: kind.value, id: id.value.trim() };
      r.body = {}; r.body[r.kind === "visitor" ? "visitor_id" : "customer_id"] = r.id;
      r.base = tenant ? "/v1/tenants/" + encodeURIComponent(tenant.value) + "/personal-data" : "/v1/admin/personal-data";
      return r;
    }
    function valid() {
      var ok = PATTERN[kind.value].test(id.value.trim());
      id.setCustomValidity(ok ? "" : t("badId"));
      if (!ok) id.reportValidity();
      return ok;
    }
    function figures(source, keys) {
      return kids(el("div", "figures"), keys.map(function (k) {
        return kids(el("div", "figure"), [el("b", null, String(source[k] || 0)), el("span", null, t("n_" + k))]);
      }));
    }
    function exportData(r) {
      ui.call("POST", r.base + "/export", r.body).then(function (doc) {
        var file = "personal-data-" + r.id.replace(/[^A-Za-z0-9_-]/g, "_") + ".json";
        var json = JSON.stringify(doc, null, 2);
        save(json, file);
        result.textContent = "";
        var box = el("div", "privacy-summary");
        kids(box, [el("h4", null, t("summary")), el("p", "summary-text", zh ? doc.summary.text_zh : doc.summary.text_en),
                   figures(doc.summary, COUNTS)]);
        if (doc.not_included && doc.not_included.length) {
          box.appendChild(el("p", "muted", t("notIncluded")));
          box.appendChild(kids(el("ul", "muted"), doc.not_included.map(function (x) { return el("li", null, x); })));
        }
        box.appendChild(ui.button("downloadAgain", null, function () { save(json, file); }));
        result.appendChild(box);
        ui.toast(t("exported", { id: r.id, file: file }));
      }).catch(function (err) {
        if (err.status !== 413) { ui.fail(err); return; }
        result.textContent = "";
        var who = r.kind === "visitor" ? "--visitor-id " : "--customer-id ";
        var tenantId = tenant ? tenant.value : ui.tenantId();
        kids(result, [kids(el("div", "notice too-big"), [el("p", null, t("tooBig")), el("pre", "snippet",
          "kefu personal-data export --tenant " + tenantId + " " + who + r.id + " --output personal-data.json")])]);
      });
    }
    function save(json, file) {
      var a = el("a"); a.href = URL.createObjectURL(new Blob([json], { type: "application/json" })); a.download = file;
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
    }
    function askErase(r) {
      var dialog = el("dialog", "erase-dialog"); dialog.id = "erase-dialog";
      var typed = ui.input("confirm"); typed.autocomplete = "off"; typed.spellcheck = false;
      var go = ui.button("eraseNow", "danger", function () { dialog.close(); dialog.remove(); erase(r); });
      go.disabled = true;
      typed.addEventListener("input", function () { go.disabled = typed.value.trim() !== r.id; });
      kids(dialog, [el("h3", null, t("eraseTitle", { id: r.id })), el("p", "warn", t("eraseWarn")),
                    ui.field("typeToConfirm", typed),
                    kids(el("div", "row-actions"), [go, ui.button("cancel", null, function () { dialog.close(); dialog.remove(); })])]);
      dialog.addEventListener("cancel", function () { dialog.remove(); });
      document.body.appendChild(dialog);
      dialog.showModal(); typed.focus();
    }
    function erase(r) {
      var body = Object.assign({ confirm: r.id }, r.body);
      ui.call("POST", r.base + "/erase", body).then(function (done) {
        result.textContent = "";
        var box = el("div", "erasure-report");
        kids(box, [el("h4", null, t("erasedTitle", { id: r.id })), figures(done, ERASED)]);
        var residual = done.residual_s || {}, names = Object.keys(residual);
        if (names.length) {
          var longest = Math.max.apply(null, names.map(function (k) { return residual[k]; }));
          var parts = names.map(function (k) {
            var key = "residual_" + k, s = Math.ceil(residual[k]);
            return t(key) === key ? k + " " + s + " s" : t(key, { s: s });
          });  // listed when there are several, each with its own time
          box.appendChild(el("p", "residual", t("residual", { s: Math.ceil(longest),
            parts: parts.length < 2 ? "" : zh ? "（" + parts.join("，") + "）" : " (" + parts.join(", ") + ")" })));
        }
        box.appendChild(el("p", "muted", t("eraseNote")));
        result.appendChild(box);
        ui.toast(t("erased", { id: r.id }));
      }).catch(function (err) {
        if (err.status !== 503) { ui.fail(err); return; }
        result.textContent = "";
        kids(result, [kids(el("div", "notice"), [el("p", null, t("eraseFailed")),
          ui.button("retry", "danger", function () { erase(r); })])]);
      });
    }
  }

  function retention(card, ui) {
    var t = ui.t;
    card.id = "retention";
    card.appendChild(ui.el("p", "muted", t("retentionHelp")));
    function days(name) { var i = ui.input(name, "number"); i.min = 1; i.max = 3650; i.step = 1; i.required = true; i.className = "num"; i.disabled = true; return i; }
    // Disabled until the saved values are in (an answer must not overwrite what was typed).
    var fields = { transcripts_days: days("transcripts_days"), facts_days: days("facts_days"), offline_messages_days: days("offline_messages_days") };
    var f = ui.form("stack", [ui.field("transcriptsDays", fields.transcripts_days), ui.field("factsDays", fields.facts_days),
                              ui.field("offlineDays", fields.offline_messages_days)], "save", function () {
      var body = {};
      Object.keys(fields).forEach(function (k) { body[k] = Number(fields[k].value); });
      ui.call("PUT", "/v1/admin/retention", body).then(function () { ui.toast(t("saved")); load(); }).catch(ui.fail);
    });
    card.appendChild(f);
    function load() {
      ui.call("GET", "/v1/admin/retention").then(function (r) {
        Object.keys(fields).forEach(function (k) { fields[k].value = String(r[k]); fields[k].defaultValue = String(r[k]); fields[k].disabled = false; });
      }).catch(ui.fail);
    }
    load();
  }

  (window.KefuAdminScreens = window.KefuAdminScreens || []).push({
    id: "privacy", after: "audit", superAdmin: true, i18n: I18N, render: render
  });
})();
