/*!
 * Kefu admin console: a tenant administrator's screens over the admin HTTP API (team, widget,
 * engines, knowledge base, conversations, audit log, reports), and the super-admin's tenants.
 *
 * Sign-in: POST /v1/agent/login (organisation, e-mail, password) on the admin API, which is
 * this page's origin by default or the URL given under "Admin API URL" (an AWS deployment's
 * admin HTTP API; its ADMIN_ALLOWED_ORIGINS must name this page's origin). The short-lived
 * token is refreshed before it expires (POST /v1/agent/refresh), as the agent console does; a
 * refused refresh or a 401 returns to the sign-in form.
 *
 * Plain JavaScript, no build step. Every value from the server is written with textContent:
 * no HTML is ever built from data. docs/admin-console.md describes the screens.
 */
(function () {
  "use strict";
  var I18N = {
    zh: {
      appTitle: "Kefu 管理后台", tenant: "组织 ID", email: "邮箱", password: "密码", signIn: "登录",
      apiUrl: "管理 API 地址", apiUrlHelp: "留空：与本页同源。AWS 部署：填写管理 HTTP API 的地址",
      wrong: "组织、邮箱或密码错误", throttled: "尝试次数过多，请 {s} 秒后再试", unreachable: "无法连接管理 API：{url}",
      signedOut: "您已退出，请重新登录", notAdmin: "此账号不是管理员：请使用客服工作台", logout: "退出",
      team: "团队", widget: "小部件", engines: "模型引擎", knowledge: "知识库", conversations: "对话记录",
      audit: "审计日志", reports: "报表", tenants: "租户",
      saved: "已保存", deleted: "已删除", failed: "操作失败：{msg}", forbidden: "没有权限", tooLarge: "内容过大",
      unavailable: "服务暂不可用", notFound: "不存在", conflict: "已存在",
      // team
      revokeTitle: "账号权限变更规则",
      revokeRules: "更改角色、停用账号、重置密码或“强制退出”会立即使此人的所有登录失效：打开中的客服工作台在下一次请求或心跳（最多约 30 秒）时被断开并回到登录页，管理 API 立即返回 401，此人同时被标记为离开，不再分配新对话。更改姓名或接待上限不会让其退出。",
      name: "姓名", role: "角色", capacity: "接待上限", status: "状态", actions: "操作",
      role_agent: "客服", role_admin: "管理员", active: "启用", inactive: "已停用",
      deactivate: "停用", reactivate: "启用", resetPassword: "重置密码", signOutAgent: "强制退出",
      invite: "添加成员", add: "添加", newPassword: "新密码（至少 10 位）", generate: "生成", save: "保存", cancel: "取消",
      you: "（您）", confirmSelf: "这会让您自己退出登录，继续吗？",
      confirmDeactivate: "停用 {name}？其所有登录将立即失效。", confirmRole: "将 {name} 的角色改为“{role}”？其所有登录将立即失效，需要重新登录。",
      confirmReset: "为 {name} 设置新密码？其所有登录将立即失效。", confirmSignOut: "让 {name} 在所有设备上退出？",
      passwordSet: "新密码已设置：请通过安全渠道告知对方", signedOutAgent: "已强制退出",
      // widget
      widgetKeys: "小部件密钥", key: "密钥", label: "备注", origins: "允许的来源（每行一个）", created: "创建时间",
      anyOrigin: "留空：任何网站都可使用此密钥", revoke: "吊销", revoked: "已吊销 {at}", newKey: "新建密钥",
      confirmRevoke: "吊销密钥 {key}？使用它的网站将无法再打开客服对话。", preview: "预览",
      appearance: "外观与留言", color: "主色", greetingZh: "欢迎语（中文）", greetingEn: "欢迎语（英文）",
      avatar: "头像 URL", offlineEnabled: "无客服在线时允许访客留言",
      imagesToModel: "把访客发的图片交给能看图的模型（引擎配置 images: true）；关闭时模型只看到「[image]」",
      appearanceNote: "应用于此组织的所有小部件；网页上的 data- 属性优先。",
      cannedReplies: "快捷回复", cannedNote: "客服在工作台输入 / 加快捷词插入（如 /refund）；快捷词为字母、数字、_ 或 -，最多 32 个字符，每条回复最多 2000 字，最多 200 条。",
      shortcut: "快捷词", cannedText: "回复内容", addCanned: "添加快捷回复", saveCanned: "保存快捷回复",
      snippet: "嵌入代码", copy: "复制", copied: "已复制", wsUrl: "WebSocket 地址（仅 AWS 部署需要）",
      snippetHelp: "把这段代码放在网站每个页面的 </body> 之前。", livePreview: "实时预览",
      previewNote: "预览在本页的来源（{origin}）中运行，是一个真实的访客对话；限制了来源的密钥需要允许此来源才能预览。",
      pickKey: "选择一个密钥预览",
      // engines
      engineChain: "引擎链", engineNote: "按顺序尝试；为空时使用部署的默认引擎。密钥只写不读：只显示名称与更新时间。",
      kind: "类型", baseUrl: "Base URL", model: "模型", keyRef: "密钥名", timeout: "首字超时（秒）",
      addEngine: "添加引擎", saveChain: "保存引擎链", up: "上移", down: "下移", remove: "移除",
      secrets: "API 密钥", secretValue: "密钥值（保存后不可再查看）", setSecret: "保存密钥", updated: "更新时间",
      missing: "以下密钥名尚未保存，对应引擎会被跳过：{names}", testEngine: "测试", testOf: "测试 {name}（仅此引擎回答，已保存的配置）",
      testOk: "可用", testFailed: "失败", firstToken: "首字 {ms} ms", testUnusable: "此引擎不可用：请先保存引擎链，并检查模型、密钥名与地址", confirmDeleteSecret: "删除密钥 {name}？",
      // knowledge
      kbVersion: "版本 {v}", documents: "文档", upload: "上传文件", uploadHelp: "Markdown、纯文本、FAQ CSV（列：question, answer）、PDF 或 Word（.docx）；同名文件会替换旧版本并重新索引。扫描版 PDF 需先做文字识别。",
      chunks: "片段", viewChunks: "查看片段", chunksOf: "{name}：{n} 个片段", uploadedCut: "已导入 {name}：{n} 个片段（文字过长，已截断）",
      searchTester: "检索测试", searchHelp: "输入一个问题，看知识库检索到哪些片段、得分多少（混合检索：向量 + 关键词）。",
      question: "问题", topK: "返回条数", noHits: "没有检索到片段", ranks: "向量排名 {v} · 关键词排名 {k}",
      replace: "替换（重新上传）", confirmDeleteDoc: "删除文档 {name}？", uploaded: "已导入 {name}：{n} 个片段",
      kbOff: "此部署未启用知识库", badType: "不支持的文件类型：{name}", noDocs: "还没有文档",
      // conversations
      search: "搜索", query: "关键词", since: "开始日期", until: "结束日期", any: "全部", exportCsv: "导出 CSV",
      status_open: "进行中", status_closed: "已结束", owner: "接待方", owner_bot: "机器人", owner_queue: "排队", owner_human: "人工",
      visitor: "访客", lastMessage: "最后一条消息", more: "加载更多", transcript: "对话详情", image: "图片", notes: "内部备注", csat: "满意度",
      r_visitor: "访客", r_assistant: "智能助手", r_agent: "客服", r_system: "系统", none: "无", close: "关闭",
      // audit
      at: "时间", actor: "操作者", actorType: "操作者类型", action: "动作", target: "对象", targetType: "对象类型", detail: "详情",
      // reports
      csatFigures: "满意度（CSAT）", count: "评价数", average: "平均分", distribution: "评分分布", byAgent: "按客服",
      perDay: "每日对话数", agent: "客服", overview: "概览", conversationsCount: "对话数", deflection: "机器人独立解决率",
      handoffRate: "转人工率", firstResponse: "人工首次响应（中位数）", resolution: "人工解决时长（中位数）",
      reportNote: "按 {tz} 时区统计日期；首次响应 {a} 次、解决 {b} 次。", day: "日期", deflected: "机器人解决", handedOff: "转人工",
      ratings: "评价", handoffReasons: "转人工原因", unanswered: "未能回答的问题", lastAsked: "最近一次", timesAsked: "次数",
      unansweredNote: "知识库中找不到答案的问题（离线引擎拒答）；把答案补进知识库即可。", csatTrend: "每日平均分", comments: "评价留言",
      reason_button: "访客点击转人工", reason_keyword: "关键词", reason_failures: "多次未能解决", reason_llm: "模型建议转人工", reason_agent_offline: "客服离线",
      // workbench
      workbench: "话术调优", workbenchHelp: "编辑系统提示词与拟人化参数（草稿），用同一个问题对比线上版本与草稿的回答，满意后发布为新版本；每次发布都记入审计日志，可随时回滚。",
      draftTuning: "草稿", systemPrompt: "系统提示词", contextWindow: "上下文轮数", emojiFrequency: "表情频率", pacing: "回复速度（字/秒，0 为不限）",
      firstDelay: "首字前停顿（毫秒）", handoffAfter: "连续失败几次转人工（0 为不转）", fallbackOn: "启用备用引擎（失败时换下一个引擎）",
      handoffKeywords: "转人工关键词（每行一个）", emoji_none: "不用", emoji_low: "偶尔", emoji_medium: "适中", emoji_high: "经常",
      saveDraft: "保存草稿", discardDraft: "放弃草稿", publish: "发布", publishNote: "发布说明（可选）", confirmPublish: "发布后，所有对话的下一条回复都将使用此版本。继续吗？",
      published: "已发布版本 v{v}", compare: "对比回答", compareAnswers: "对比", side_published: "线上版本", side_draft: "草稿",
      streaming: "生成中…", passagesUsed: "检索到的知识片段（{n}）", memoryUsed: "使用的记忆", notAnswered: "未能回答",
      versions: "版本历史", version: "版本", publishedAt: "发布时间", publishedBy: "发布人", note: "说明", current: "当前",
      loadDraft: "载入到编辑区", rollback: "回滚到此版本", confirmRollback: "回滚到 v{v}？这会发布为一个新版本。", loaded: "已载入 v{v}，保存草稿或发布后生效",
      noVersions: "还没有发布过版本", defaultPrompt: "（部署默认提示词）", defaultIs: "留空则使用部署默认提示词：",
      editingDraft: "正在编辑草稿（尚未发布）", editingPublished: "没有草稿：下面是线上版本，修改后保存即成为草稿",
      eachDay: "按天", resolutionFigures: "解决情况与答案质量", botResolved: "机器人解决率", curatedHitRate: "精选答案命中率", groundedRate2: "有据回答率", thumbsDown: "差评",
      resolvedNote: "“机器人解决”：机器人给出了有依据的完整回答，没有转人工，没有被差评，且同一访客 7 天内没有再次发起对话（因此最近 7 天的数字可能还会下降）。",
      byKbVersion: "按知识库版本", kbVersionCol: "知识库版本", botResolvedCol: "机器人解决", curatedHitsCol: "精选答案命中", groundedCol: "有据 / 已检查", botRepliesCol: "机器人回答",
      // learning loop
      learning: "学习闭环", learningHelp: "客服解决的对话会被整理成问答建议（已去除个人信息），经您审核后才会用于回答访客；机器人答不好的问题按相似度归类，写一次答案即可。",
      reviewList: "待审核的问答（来自人工客服）", noProposals: "暂无待审核的建议", answer: "答案", method: "生成方式",
      method_engine: "模型整理", method_extractive: "原文摘取", approveCurated: "批准为精选答案", approveKnowledge: "批准为知识库条目",
      reject: "拒绝", approved: "已批准", rejected: "已拒绝", openConversation: "查看对话",
      curatedAnswers: "精选答案", noCurated: "还没有精选答案", addCurated: "添加精选答案", edit: "编辑", history: "版本历史",
      confirmDeleteCurated: "删除这条精选答案？访客将不再收到它（历史版本保留）。", changedBy: "修改人", changedAt: "修改时间",
      matchTester: "匹配测试", matchTest: "测试", matchResult: "得分 {score}（阈值 {threshold}）：{verdict}", willAnswer: "访客会直接收到此答案", willNotAnswer: "交给模型回答",
      missingQueue: "缺失知识队列", noClusters: "最近没有答不好的问题", asked: "{n} 个对话 · 最近 {at}", examples: "示例",
      kind_refused: "拒答", kind_unsupported: "无依据", kind_down: "差评", kind_handoff: "转人工",
      writeAnswer: "写答案", asCurated: "作为精选答案", asKnowledge: "作为知识库条目", learned: "已保存",
      replay: "回归测试", replayHelp: "用最近的访客问题分别以线上版本和草稿重新回答（默认离线引擎，不产生费用），比较检索命中、精选答案命中、拒答与有据率。",
      sample: "问题数（最多 50）", enginesUsed: "引擎", engines_offline: "离线引擎", engines_tenant: "本组织的引擎（最多 10 题）",
      runReplay: "运行回归测试", replayRunning: "测试中…", replayQuestions: "{n} 个问题 · 知识库 v{kb}",
      figure: "指标", retrievalHitRate: "检索命中率", curatedHits: "精选答案命中", refusals: "拒答", refusalRate: "拒答率", groundedRate: "有据率",
      changedQuestions: "结果有变化的问题", noChange: "没有问题的结果发生变化", refused: "拒答", answeredOk: "已回答",
      // tenants
      tenantName: "名称", createTenant: "创建租户", adminEmail: "管理员邮箱", adminPassword: "管理员密码（至少 10 位）",
      tenantCreated: "已创建 {id}，小部件密钥 {key}"
    },
    en: {
      appTitle: "Kefu admin console", tenant: "Organisation ID", email: "E-mail", password: "Password", signIn: "Sign in",
      apiUrl: "Admin API URL", apiUrlHelp: "Empty: this page's origin. AWS deployment: the admin HTTP API's URL",
      wrong: "Wrong organisation, e-mail or password", throttled: "Too many attempts: try again in {s} s", unreachable: "Cannot reach the admin API: {url}",
      signedOut: "You were signed out: please sign in again", notAdmin: "This account is not an administrator: use the agent console", logout: "Sign out",
      team: "Team", widget: "Widget", engines: "Engines", knowledge: "Knowledge base", conversations: "Conversations",
      audit: "Audit log", reports: "Reports", tenants: "Tenants",
      saved: "Saved", deleted: "Deleted", failed: "Failed: {msg}", forbidden: "Not allowed", tooLarge: "Too large",
      unavailable: "Temporarily unavailable", notFound: "Not found", conflict: "Already exists",
      revokeTitle: "When access changes",
      revokeRules: "Changing someone's role, deactivating them, setting a new password or \"Sign out everywhere\" ends all of their sessions at once: an open agent console is disconnected at its next request or heartbeat (within about 30 s) and returns to the sign-in form, the admin API answers 401 at once, and the person is marked away so no conversation is assigned to them. Changing a name or capacity signs nobody out.",
      name: "Name", role: "Role", capacity: "Capacity", status: "Status", actions: "Actions",
      role_agent: "Agent", role_admin: "Admin", active: "Active", inactive: "Deactivated",
      deactivate: "Deactivate", reactivate: "Reactivate", resetPassword: "Reset password", signOutAgent: "Sign out everywhere",
      invite: "Add a member", add: "Add", newPassword: "New password (10+ characters)", generate: "Generate", save: "Save", cancel: "Cancel",
      you: " (you)", confirmSelf: "This signs you out too. Go on?",
      confirmDeactivate: "Deactivate {name}? All of their sessions end now.", confirmRole: "Make {name} \"{role}\"? All of their sessions end now; they sign in again.",
      confirmReset: "Set a new password for {name}? All of their sessions end now.", confirmSignOut: "Sign {name} out everywhere?",
      passwordSet: "New password set: give it to them over a safe channel", signedOutAgent: "Signed out everywhere",
      widgetKeys: "Widget keys", key: "Key", label: "Label", origins: "Allowed origins (one per line)", created: "Created",
      anyOrigin: "Empty: any site may use this key", revoke: "Revoke", revoked: "Revoked {at}", newKey: "New key",
      confirmRevoke: "Revoke key {key}? Sites using it can no longer open a chat.", preview: "Preview",
      appearance: "Appearance and offline messages", color: "Colour", greetingZh: "Greeting (Chinese)", greetingEn: "Greeting (English)",
      avatar: "Avatar URL", offlineEnabled: "Visitors may leave a message when no agent is online",
      imagesToModel: "Show visitors' pictures to a model that reads images (engine images: true); off, the model reads \u201c[image]\u201d",
      appearanceNote: "Applies to every widget of this organisation; a page's data- attributes take precedence.",
      cannedReplies: "Canned replies", cannedNote: "Agents type / and the shortcut in the console (/refund); a shortcut is letters, digits, _ or -, up to 32 characters; up to 200 replies of 2,000 characters each.",
      shortcut: "Shortcut", cannedText: "Reply", addCanned: "Add a canned reply", saveCanned: "Save canned replies",
      snippet: "Embed snippet", copy: "Copy", copied: "Copied", wsUrl: "WebSocket URL (AWS deployments only)",
      snippetHelp: "Put this before </body> on every page of your site.", livePreview: "Live preview",
      previewNote: "The preview runs on this page's origin ({origin}) and is a real visitor chat; a key limited to other origins must allow this one to preview.",
      pickKey: "Pick a key to preview",
      engineChain: "Engine chain", engineNote: "Tried in order; empty: the deployment's engines. Keys are write-only: only names and update times are shown.",
      kind: "Kind", baseUrl: "Base URL", model: "Model", keyRef: "Key name", timeout: "First token timeout (s)",
      addEngine: "Add engine", saveChain: "Save chain", up: "Up", down: "Down", remove: "Remove",
      secrets: "API keys", secretValue: "Key value (never shown again)", setSecret: "Store key", updated: "Updated",
      missing: "These key names are not stored yet, their engines are skipped: {names}", testEngine: "Test", testOf: "Testing {name} (this engine alone, as saved)",
      testOk: "works", testFailed: "failed", firstToken: "first token {ms} ms", testUnusable: "This engine cannot be used: save the chain, and check its model, key name and URL", confirmDeleteSecret: "Delete key {name}?",
      kbVersion: "version {v}", documents: "Documents", upload: "Upload files", uploadHelp: "Markdown, plain text, FAQ CSV (columns question, answer), PDF or Word (.docx); a file with the same name replaces the old version and is indexed again. Scanned PDFs need text recognition first.",
      chunks: "Chunks", viewChunks: "Chunks", chunksOf: "{name}: {n} chunks", uploadedCut: "Imported {name}: {n} chunks (text too long, cut)",
      searchTester: "Search tester", searchHelp: "Ask a question and see which passages the knowledge base retrieves, with their scores (hybrid search: vectors and keywords).",
      question: "Question", topK: "Passages", noHits: "No passage found", ranks: "vector rank {v} · keyword rank {k}",
      replace: "Replace (upload again)", confirmDeleteDoc: "Delete document {name}?", uploaded: "Imported {name}: {n} chunks",
      kbOff: "The knowledge base is not enabled on this deployment", badType: "Unsupported file type: {name}", noDocs: "No documents yet",
      search: "Search", query: "Text", since: "From", until: "To", any: "Any", exportCsv: "Export CSV",
      status_open: "Open", status_closed: "Closed", owner: "Owner", owner_bot: "Bot", owner_queue: "Queue", owner_human: "Human",
      visitor: "Visitor", lastMessage: "Last message", more: "Load more", transcript: "Transcript", image: "Image", notes: "Private notes", csat: "Satisfaction",
      r_visitor: "Visitor", r_assistant: "Assistant", r_agent: "Agent", r_system: "System", none: "none", close: "Close",
      at: "At", actor: "Actor", actorType: "Actor type", action: "Action", target: "Target", targetType: "Target type", detail: "Detail",
      csatFigures: "Satisfaction (CSAT)", count: "Ratings", average: "Average", distribution: "Scores", byAgent: "By agent",
      perDay: "Conversations per day", agent: "Agent", overview: "Overview", conversationsCount: "Conversations", deflection: "Handled by the bot alone",
      handoffRate: "Handed to a human", firstResponse: "Human first response (median)", resolution: "Human resolution (median)",
      reportNote: "Days in {tz}; {a} first responses and {b} resolutions measured.", day: "Day", deflected: "Bot alone", handedOff: "Handed off",
      ratings: "Ratings", handoffReasons: "Handoff reasons", unanswered: "Unanswered questions", lastAsked: "Last asked", timesAsked: "Times asked",
      unansweredNote: "Questions the knowledge base had no answer to (the offline engine's refusals): add the answers to the knowledge base.", csatTrend: "Average per day", comments: "Comments",
      reason_button: "Visitor pressed the button", reason_keyword: "Keyword", reason_failures: "Repeated failures", reason_llm: "The model handed off", reason_agent_offline: "Agent went offline",
      workbench: "Tuning workbench", workbenchHelp: "Edit the system prompt and the humanisation knobs as a draft, compare the published and the draft answer to the same question, then publish the draft as a new version; every publish is in the audit log and can be rolled back.",
      draftTuning: "Draft", systemPrompt: "System prompt", contextWindow: "Context window (turns)", emojiFrequency: "Emoji", pacing: "Reply pacing (characters/s, 0: as fast as the model)",
      firstDelay: "Pause before the first words (ms)", handoffAfter: "Hand off after this many failures (0: never)", fallbackOn: "Fallback engines (try the next engine on failure)",
      handoffKeywords: "Handoff keywords (one per line)", emoji_none: "none", emoji_low: "rarely", emoji_medium: "sometimes", emoji_high: "often",
      saveDraft: "Save draft", discardDraft: "Discard draft", publish: "Publish", publishNote: "What changed (optional)", confirmPublish: "Every conversation's next reply will use this version. Publish?",
      published: "Published version v{v}", compare: "Compare answers", compareAnswers: "Compare", side_published: "Published", side_draft: "Draft",
      streaming: "answering…", passagesUsed: "Knowledge passages given ({n})", memoryUsed: "Memory given", notAnswered: "nothing to answer from",
      versions: "Version history", version: "Version", publishedAt: "Published", publishedBy: "By", note: "Note", current: "current",
      loadDraft: "Load into the editor", rollback: "Roll back to this", confirmRollback: "Roll back to v{v}? It is published as a new version.", loaded: "Loaded v{v}: save the draft or publish to use it",
      noVersions: "Nothing published yet", defaultPrompt: "(the deployment's default prompt)", defaultIs: "Empty: the deployment's default prompt:",
      editingDraft: "Editing the draft (not published)", editingPublished: "No draft: this is the published version; save your changes to make a draft",
      eachDay: "Each day", resolutionFigures: "Resolution and answer quality", botResolved: "Resolved by the bot", curatedHitRate: "Curated-answer hit rate", groundedRate2: "Grounded-answer rate", thumbsDown: "Rated down",
      resolvedNote: "Resolved by the bot: the bot completed an answer it had something to answer from, nobody was asked for, no reply was rated down, and the same visitor did not come back within 7 days (so the last 7 days' figure can still drop).",
      byKbVersion: "By knowledge-base version", kbVersionCol: "KB version", botResolvedCol: "Bot-resolved", curatedHitsCol: "Curated hits", groundedCol: "Grounded / checked", botRepliesCol: "Bot replies",
      learning: "Learning loop", learningHelp: "Conversations your agents resolved become proposed questions and answers (personal data removed); they answer visitors only once you approve them. Questions the bot answered badly are grouped by similarity: write the answer once.",
      reviewList: "Proposed from human agents", noProposals: "Nothing to review", answer: "Answer", method: "Made by",
      method_engine: "engine", method_extractive: "extracted", approveCurated: "Approve as curated answer", approveKnowledge: "Approve into the knowledge base",
      reject: "Reject", approved: "Approved", rejected: "Rejected", openConversation: "Conversation",
      curatedAnswers: "Curated answers", noCurated: "No curated answers yet", addCurated: "Add a curated answer", edit: "Edit", history: "Versions",
      confirmDeleteCurated: "Delete this curated answer? Visitors no longer get it (its versions stay).", changedBy: "Changed by", changedAt: "Changed",
      matchTester: "Match tester", matchTest: "Test", matchResult: "score {score} (threshold {threshold}): {verdict}", willAnswer: "visitors get this answer", willNotAnswer: "the model answers",
      missingQueue: "Missing-knowledge queue", noClusters: "Nothing answered badly lately", asked: "{n} conversations · last {at}", examples: "Examples",
      kind_refused: "refused", kind_unsupported: "unsupported", kind_down: "rated down", kind_handoff: "handed off",
      writeAnswer: "Write the answer", asCurated: "as a curated answer", asKnowledge: "as a knowledge-base entry", learned: "Saved",
      replay: "Regression replay", replayHelp: "Re-ask recent visitor questions with the published version and with the draft (the offline engine by default: free) and compare retrieval hits, curated hits, refusals and the grounded rate.",
      sample: "Questions (at most 50)", enginesUsed: "Engines", engines_offline: "offline engine", engines_tenant: "the tenant's engines (at most 10)",
      runReplay: "Run the replay", replayRunning: "replaying…", replayQuestions: "{n} questions · knowledge base v{kb}",
      figure: "Figure", retrievalHitRate: "Retrieval hit rate", curatedHits: "Curated hits", refusals: "Refusals", refusalRate: "Refusal rate", groundedRate: "Grounded rate",
      changedQuestions: "Questions whose outcome changed", noChange: "No question's outcome changed", refused: "refused", answeredOk: "answered",
      tenantName: "Name", createTenant: "Create tenant", adminEmail: "Admin e-mail", adminPassword: "Admin password (10+ characters)",
      tenantCreated: "Created {id}, widget key {key}"
    }
  };
  var lang = localStorage.getItem("kefu.console.lang") || ((navigator.language || "zh").toLowerCase().indexOf("zh") === 0 ? "zh" : "en");
  function t(key, vars) {
    var s = (I18N[lang] || I18N.zh)[key];
    if (s == null) s = key;
    return s.replace(/\{(\w+)\}/g, function (_, k) { return vars && vars[k] != null ? vars[k] : ""; });
  }
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
  function kids(parent, children) { children.forEach(function (c) { if (c) parent.appendChild(c); }); return parent; }
  function button(key, cls, onClick) { var b = el("button", cls, t(key)); b.type = "button"; b.dataset.action = key; b.addEventListener("click", onClick); return b; }
  function input(name, type, value) { var i = el("input"); i.name = name; i.type = type || "text"; if (value != null) { i.defaultValue = String(value); i.value = String(value); } return i; }
  function field(key, control) { var l = el("label", "field"); l.appendChild(el("span", null, t(key))); l.appendChild(control); return l; }
  function select(name, options, value) {
    var s = el("select"); s.name = name;
    options.forEach(function (o) { var opt = el("option", null, o[1]); opt.value = o[0]; s.appendChild(opt); });
    if (value != null) s.value = value;
    return s;
  }
  function when(iso) { return iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : ""; }
  function table(headers, rows) {
    var tb = el("table", "grid"), head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", null, t(h))); });
    kids(tb, [kids(el("thead"), [head]), kids(el("tbody"), rows)]);
    return tb;
  }
  function row(cells) {
    var tr = el("tr");
    cells.forEach(function (c) { var td = el("td"); if (c instanceof Node) td.appendChild(c); else td.textContent = c == null ? "" : String(c); tr.appendChild(td); });
    return tr;
  }
  function toast(text) {
    var n = $("toast"); n.textContent = text; n.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { n.hidden = true; }, 4000);
  }
  function randomPassword() {
    var bytes = new Uint8Array(12); crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"[b % 56]; }).join("") + "-" + bytes[0] % 90 + 10;
  }

  // -- session: sign-in, refresh, API calls ------------------------------------------------
  var STORE = "kefu.admin.session";
  var session = JSON.parse(sessionStorage.getItem(STORE) || "null"), refreshTimer = null;
  var params = new URLSearchParams(location.search);
  function cleanBase(url) { return (url || "").trim().replace(/\/+$/, ""); }
  function base() { return session ? session.api : ""; }
  function keep(body, api) {
    session = { token: body.token, expiresAt: Date.now() + body.expires_in * 1000, agent: body.agent,
                api: api != null ? api : base() };
    sessionStorage.setItem(STORE, JSON.stringify(session));
    scheduleRefresh();
  }
  function signedOut(message) {
    session = null; sessionStorage.removeItem(STORE); clearTimeout(refreshTimer);
    $("app").hidden = true; $("login").hidden = false;
    if (message) { $("login-error").textContent = message; $("login-error").hidden = false; }
  }
  function refresh() {
    return fetch(base() + "/v1/agent/refresh", { method: "POST", headers: { authorization: "Bearer " + session.token } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { signedOut(t("signedOut")); throw new Error("revoked"); }
        if (!r.ok) throw new Error("refresh failed");
        return r.json();
      })
      .then(function (body) { keep(body); });
  }
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!session) return;
    var left = session.expiresAt - Date.now();
    var wait = Math.max(1000, Math.min(left - 120000, left * 2 / 3));  // two minutes before expiry
    refreshTimer = setTimeout(function () {
      if (session) refresh().catch(function () { if (session) refreshTimer = setTimeout(scheduleRefresh, 10000); });
    }, wait);
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && session && session.expiresAt - Date.now() < 180000) refresh().catch(function () {});
  });
  function problem(status, body) {
    if (status === 403) return t("forbidden");
    if (status === 404) return t("notFound");
    if (status === 409) return t("conflict");
    if (status === 413) return t("tooLarge");
    if (status >= 500) return (body && typeof body.detail === "string" ? body.detail + " · " : "") + t("unavailable");
    var d = body && body.detail;
    if (Array.isArray(d)) return d.map(function (x) { return (x.loc || []).slice(1).join(".") + ": " + x.msg; }).join("; ");
    return typeof d === "string" ? d : String(status);
  }
  // A call of the admin API with the session's token. Resolves to the JSON body (null for
  // 204, a Blob with raw=true); rejects with an Error whose message is for people. A 401 is
  // retried once after a refresh; a refused refresh signs out.
  function call(method, path, body, opts, retried) {
    opts = opts || {};
    var headers = { authorization: "Bearer " + session.token }, form = body instanceof FormData;
    if (body !== undefined && !form) headers["content-type"] = "application/json";
    return fetch(base() + path, { method: method, headers: headers, body: body === undefined ? undefined : form ? body : JSON.stringify(body) })
      .then(function (r) {
        if (r.status === 401 && !retried) return refresh().then(function () { return call(method, path, body, opts, true); });
        if (r.status === 401) { signedOut(t("signedOut")); throw new Error(t("signedOut")); }
        if (!r.ok) return r.json().catch(function () { return null; }).then(function (b) { var e = new Error(problem(r.status, b)); e.status = r.status; throw e; });
        if (r.status === 204) return null;
        return opts.raw ? r.blob() : r.json();
      });
  }
  function fail(err) { if (session) toast(t("failed", { msg: err.message })); }
  function download(path, filename) {
    return call("GET", path, undefined, { raw: true }).then(function (blob) {
      var a = el("a"); a.href = URL.createObjectURL(blob); a.download = filename;
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
    }).catch(fail);
  }
  // A POST whose answer is NDJSON: onEvent gets each object as it arrives. 401 is retried
  // once after a refresh, as in call().
  function streamJson(path, body, onEvent, retried) {
    return fetch(base() + path, { method: "POST", body: JSON.stringify(body),
                                  headers: { authorization: "Bearer " + session.token, "content-type": "application/json" } })
      .then(function (r) {
        if (r.status === 401 && !retried) return refresh().then(function () { return streamJson(path, body, onEvent, true); });
        if (r.status === 401) { signedOut(t("signedOut")); throw new Error(t("signedOut")); }
        if (!r.ok) return r.json().catch(function () { return null; }).then(function (b) { var e = new Error(problem(r.status, b)); e.status = r.status; throw e; });
        var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            buffer += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
            var lines = buffer.split("\n"); buffer = lines.pop();
            lines.forEach(function (line) { if (line.trim()) onEvent(JSON.parse(line)); });
            if (chunk.done) { if (buffer.trim()) onEvent(JSON.parse(buffer)); return null; }
            return pump();
          });
        }
        return pump();
      });
  }
  function query(values) {
    var q = new URLSearchParams();
    Object.keys(values).forEach(function (k) { if (values[k] !== "" && values[k] != null) q.set(k, values[k]); });
    var s = q.toString();
    return s ? "?" + s : "";
  }
  function dayStart(value, plusDays) {
    if (!value) return "";
    var d = new Date(value + "T00:00:00"); d.setDate(d.getDate() + (plusDays || 0));
    return d.toISOString();
  }

  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target, api = cleanBase(f.api.value);
    localStorage.setItem("kefu.admin.tenant", f.tenant.value.trim());
    localStorage.setItem("kefu.admin.api", api);
    fetch(api + "/v1/agent/login", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant: f.tenant.value.trim(), email: f.email.value, password: f.password.value }) })
      .catch(function () { throw new Error(t("unreachable", { url: api || location.origin })); })
      .then(function (r) {
        if (r.status === 429) throw new Error(t("throttled", { s: r.headers.get("retry-after") || "60" }));
        if (!r.ok) throw new Error(t("wrong"));
        return r.json();
      })
      .then(function (body) {
        if (body.agent.role !== "admin") throw new Error(t("notAdmin"));
        $("login-error").hidden = true; f.password.value = "";
        keep(body, api);
        start();
      })
      .catch(function (err) { var n = $("login-error"); n.textContent = err.message || t("wrong"); n.hidden = false; });
  });
  $("logout").addEventListener("click", function (e) { e.preventDefault(); signedOut(); });

  // -- navigation ----------------------------------------------------------------------------
  var SCREENS = {
    team: renderTeam, widget: renderWidget, engines: renderEngines, knowledge: renderKnowledge,
    conversations: renderConversations, audit: renderAudit, reports: renderReports, tenants: renderTenants,
    workbench: renderWorkbench, learning: renderLearning
  };
  function isSuper() { return session && session.agent.tenant_id === "_root"; }
  function screens() { return isSuper() ? ["tenants"] : ["team", "widget", "engines", "knowledge", "workbench", "learning", "conversations", "audit", "reports"]; }
  // Screens written in other files (web/admin-*.js, loaded before this one) register in
  // window.KefuAdminScreens: { id, after, superAdmin, i18n: { zh, en }, render(root, ui) }; ui
  // holds this file's helpers, so they call the API and build the DOM the same way.
  var EXTRA = window.KefuAdminScreens || [], UI = { t: t, el: el, kids: kids, button: button, input: input,
    field: field, select: select, when: when, table: table, row: row, toast: toast, call: call, fail: fail,
    section: section, form: form, isSuper: isSuper,
    tenantId: function () { return session.agent.tenant_id; } };
  EXTRA.forEach(function (x) {
    Object.keys(x.i18n || {}).forEach(function (l) { if (I18N[l]) Object.assign(I18N[l], x.i18n[l]); });
    SCREENS[x.id] = function (root) { x.render(root, UI); };
  });
  function allScreens() {
    var list = screens().slice();
    EXTRA.forEach(function (x) {
      if (!x.superAdmin && isSuper()) return;
      var i = list.indexOf(x.after); list.splice(i >= 0 ? i + 1 : list.length, 0, x.id);
    });
    return list;
  }
  function current() { var h = location.hash.slice(1); return allScreens().indexOf(h) >= 0 ? h : allScreens()[0]; }
  function renderNav() {
    var nav = $("nav"); nav.textContent = "";
    allScreens().forEach(function (id) {
      var a = el("a", id === current() ? "active" : null, t(id)); a.href = "#" + id; a.dataset.screen = id;
      nav.appendChild(a);
    });
  }
  function show() {
    if (!session) return;
    renderNav();
    var root = $("screen"); root.textContent = "";
    var id = current();
    root.dataset.screen = id;
    root.appendChild(el("h2", null, t(id)));
    SCREENS[id](root);
  }
  window.addEventListener("hashchange", show);
  function applyI18n() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach(function (n) { n.textContent = t(n.dataset.i18n); });
    document.title = t("appTitle");
  }
  document.querySelectorAll("[data-lang]").forEach(function (a) {
    a.addEventListener("click", function (e) { e.preventDefault(); lang = a.dataset.lang; localStorage.setItem("kefu.console.lang", lang); applyI18n(); show(); });
  });
  function section(root, titleKey) { var s = el("section", "card"); if (titleKey) s.appendChild(el("h3", null, t(titleKey))); root.appendChild(s); return s; }
  function form(cls, controls, submitKey, onSubmit) {
    var f = el("form", cls); kids(f, controls);
    var b = el("button", "primary", t(submitKey)); b.type = "submit"; b.dataset.action = submitKey; f.appendChild(b);
    f.addEventListener("submit", function (e) { e.preventDefault(); onSubmit(f); });
    return f;
  }

  // -- team ------------------------------------------------------------------------------------
  function renderTeam(root) {
    var rules = el("div", "notice"); rules.id = "revocation-rules";
    kids(rules, [el("strong", null, t("revokeTitle")), el("p", null, t("revokeRules"))]);
    root.appendChild(rules);
    var list = section(root), box = el("div"); list.appendChild(box);
    function load() { call("GET", "/v1/admin/agents").then(draw).catch(fail); }
    function change(agent, patch, confirmKey, vars) {
      var me = agent.id === session.agent.id, revokes = patch.role || patch.active === false || patch.password;
      if (confirmKey && !confirm(t(confirmKey, vars))) return Promise.resolve(false);
      if (me && revokes && !confirm(t("confirmSelf"))) return Promise.resolve(false);
      return call("PATCH", "/v1/admin/agents/" + encodeURIComponent(agent.id), patch).then(function () {
        if (me && revokes) { signedOut(t("signedOut")); return true; }
        toast(patch.password ? t("passwordSet") : t("saved")); load(); return true;
      }).catch(function (err) { fail(err); load(); return false; });
    }
    function passwordForm(agent, cell) {
      var pw = input("password", "text"); pw.placeholder = t("newPassword"); pw.minLength = 10; pw.required = true;
      var f = form("inline", [pw, button("generate", null, function () { pw.value = randomPassword(); }),
                              button("cancel", null, load)], "save", function () {
        change(agent, { password: pw.value }, "confirmReset", { name: agent.name });
      });
      cell.textContent = ""; cell.appendChild(f); pw.focus();
    }
    function draw(agents) {
      box.textContent = "";
      box.appendChild(table(["name", "email", "role", "capacity", "status", "actions"], agents.map(function (a) {
        var role = select("role", [["agent", t("role_agent")], ["admin", t("role_admin")]], a.role);
        role.addEventListener("change", function () {
          change(a, { role: role.value }, "confirmRole", { name: a.name, role: t("role_" + role.value) })
            .then(function (done) { if (!done) role.value = a.role; });
        });
        var cap = input("capacity", "number", a.capacity); cap.min = 0; cap.max = 100; cap.className = "num";
        cap.addEventListener("change", function () { change(a, { capacity: Number(cap.value) }); });
        var actions = el("div", "row-actions");
        kids(actions, [
          a.active ? button("deactivate", "danger", function () { change(a, { active: false }, "confirmDeactivate", { name: a.name }); })
                   : button("reactivate", null, function () { change(a, { active: true }); }),
          button("resetPassword", null, function () { passwordForm(a, actions); }),
          button("signOutAgent", null, function () {
            if (!confirm(t("confirmSignOut", { name: a.name }))) return;
            if (a.id === session.agent.id && !confirm(t("confirmSelf"))) return;
            call("POST", "/v1/admin/agents/" + encodeURIComponent(a.id) + "/sign-out").then(function () {
              if (a.id === session.agent.id) signedOut(t("signedOut")); else toast(t("signedOutAgent"));
            }).catch(fail);
          })
        ]);
        var tr = row([a.name + (a.id === session.agent.id ? t("you") : ""), a.email, role, cap,
                      el("span", a.active ? "pill ok" : "pill off", t(a.active ? "active" : "inactive")), actions]);
        tr.dataset.email = a.email;
        if (!a.active) tr.classList.add("dim");
        return tr;
      })));
    }
    var pw = input("password", "text"); pw.minLength = 10; pw.required = true;
    var email = input("email", "email"); email.required = true;
    var name = input("name"); name.required = true;
    var cap = input("capacity", "number", 5); cap.min = 0; cap.max = 100;
    var invite = section(root, "invite");
    invite.appendChild(form("stack", [
      field("name", name), field("email", email),
      field("newPassword", pw), button("generate", null, function () { pw.value = randomPassword(); }),
      field("role", select("role", [["agent", t("role_agent")], ["admin", t("role_admin")]], "agent")),
      field("capacity", cap)
    ], "add", function (f) {
      call("POST", "/v1/admin/agents", { name: f.name.value.trim(), email: f.email.value.trim(), password: f.password.value,
                                         role: f.role.value, capacity: Number(f.capacity.value) })
        .then(function () { f.reset(); toast(t("saved")); load(); }).catch(fail);
    }));
    load();
  }

  // -- widget ----------------------------------------------------------------------------------
  var WIDGET_WS = "kefu.admin.ws";
  function renderWidget(root) {
    var keysBox = section(root, "widgetKeys"), list = el("div"); keysBox.appendChild(list);
    var chosen = null;
    var originsOf = function (text) { return text.split(/\s+/).map(function (s) { return s.trim(); }).filter(Boolean); };
    function load() { call("GET", "/v1/admin/widget-keys").then(draw).catch(fail); }
    function draw(keys) {
      list.textContent = "";
      var live = keys.filter(function (k) { return !k.revoked_at; });
      if (!chosen && live.length) chosen = live[0].key;
      list.appendChild(table(["key", "label", "origins", "created", "actions"], keys.map(function (k) {
        var origins = el("textarea"); origins.name = "origins"; origins.rows = Math.max(2, k.allowed_origins.length);
        origins.value = k.allowed_origins.join("\n"); origins.placeholder = t("anyOrigin");
        var label = input("label", "text", k.label);
        var actions = el("div", "row-actions");
        if (k.revoked_at) {
          origins.disabled = label.disabled = true;
          actions.appendChild(el("span", "muted", t("revoked", { at: when(k.revoked_at) })));
        } else {
          kids(actions, [
            button("save", "primary", function () {
              call("PATCH", "/v1/admin/widget-keys/" + encodeURIComponent(k.key),
                   { label: label.value, allowed_origins: originsOf(origins.value) })
                .then(function () { toast(t("saved")); load(); }).catch(fail);
            }),
            button("preview", null, function () { chosen = k.key; snippet(); preview(); }),
            button("revoke", "danger", function () {
              if (!confirm(t("confirmRevoke", { key: k.key }))) return;
              call("DELETE", "/v1/admin/widget-keys/" + encodeURIComponent(k.key))
                .then(function () { if (chosen === k.key) chosen = null; toast(t("saved")); load(); }).catch(fail);
            })
          ]);
        }
        var tr = row([el("code", null, k.key), label, origins, when(k.created_at), actions]);
        tr.dataset.key = k.key;
        if (k.revoked_at) tr.classList.add("dim");
        return tr;
      })));
      snippet();
    }
    var newOrigins = el("textarea"); newOrigins.name = "origins"; newOrigins.rows = 2; newOrigins.placeholder = t("anyOrigin");
    keysBox.appendChild(form("inline new-key", [field("label", input("label")), field("origins", newOrigins)], "newKey", function (f) {
      call("POST", "/v1/admin/widget-keys", { label: f.label.value, allowed_origins: originsOf(newOrigins.value) })
        .then(function (k) { chosen = k.key; f.reset(); toast(t("saved")); load(); }).catch(fail);
    }));

    // appearance: the tenant's settings (the whole object is PUT back with these fields changed)
    var look = section(root, "appearance");
    look.hidden = true;  // shown once the settings are loaded
    look.appendChild(el("p", "muted", t("appearanceNote")));
    var settings = null;
    var color = input("color", "color"), greetingZh = input("greeting_zh"), greetingEn = input("greeting_en");
    var avatar = input("avatar_url", "url"), offline = input("offline_message_enabled", "checkbox");
    var offlineLabel = el("label", "check"); kids(offlineLabel, [offline, el("span", null, t("offlineEnabled"))]);
    var toModel = input("images_to_model", "checkbox");
    var toModelLabel = el("label", "check"); kids(toModelLabel, [toModel, el("span", null, t("imagesToModel"))]);
    look.appendChild(form("stack", [field("color", color), field("greetingZh", greetingZh), field("greetingEn", greetingEn),
                                    field("avatar", avatar), offlineLabel, toModelLabel], "save", function () {
      var body = Object.assign({}, settings, { color: color.value, greeting_zh: greetingZh.value, greeting_en: greetingEn.value,
                                               avatar_url: avatar.value.trim() || null, offline_message_enabled: offline.checked,
                                               images_to_model: toModel.checked });
      call("PUT", "/v1/admin/settings", body).then(function (saved) { settings = saved; toast(t("saved")); preview(); }).catch(fail);
    }));
    // canned replies (the settings' canned_replies): rows of shortcut and text, saved together
    var canned = section(root, "cannedReplies");
    canned.id = "canned"; canned.hidden = true;
    canned.appendChild(el("p", "muted", t("cannedNote")));
    var cannedRows = el("div", "canned-rows"); canned.appendChild(cannedRows);
    function cannedRow(reply) {
      var shortcut = input("shortcut", "text", reply.shortcut);
      shortcut.maxLength = 32; shortcut.required = true;
      var text = el("textarea"); text.name = "text"; text.rows = 2; text.maxLength = 2000; text.required = true;
      text.value = reply.text;
      var line = el("div", "canned-row");
      kids(line, [field("shortcut", shortcut), field("cannedText", text),
                  button("remove", "danger", function () { line.remove(); })]);
      cannedRows.appendChild(line);
    }
    canned.appendChild(form("stack", [button("addCanned", null, function () { cannedRow({ shortcut: "", text: "" }); })],
                            "saveCanned", function () {
      var replies = Array.prototype.map.call(cannedRows.querySelectorAll(".canned-row"), function (line) {
        return { shortcut: line.querySelector("[name=shortcut]").value.trim(), text: line.querySelector("[name=text]").value };
      });
      call("PUT", "/v1/admin/settings", Object.assign({}, settings, { canned_replies: replies }))
        .then(function (saved) { settings = saved; toast(t("saved")); }).catch(fail);
    }));
    call("GET", "/v1/admin/settings").then(function (s) {
      settings = s; look.hidden = false; color.value = s.color.length === 7 ? s.color : "#2f6fed"; greetingZh.value = s.greeting_zh;
      greetingEn.value = s.greeting_en; avatar.value = s.avatar_url || ""; offline.checked = s.offline_message_enabled;
      toModel.checked = !!s.images_to_model;
      canned.hidden = false; (s.canned_replies || []).forEach(cannedRow);
    }).catch(fail);

    // the embed snippet
    var code = section(root, "snippet");
    code.appendChild(el("p", "muted", t("snippetHelp")));
    var ws = input("ws", "url", localStorage.getItem(WIDGET_WS) || ""); ws.placeholder = "wss://abc123.execute-api.ap-east-1.amazonaws.com/prod";
    ws.addEventListener("input", function () { localStorage.setItem(WIDGET_WS, ws.value.trim()); snippet(); });
    var pre = el("pre", "snippet"); pre.id = "snippet";
    kids(code, [field("wsUrl", ws), pre, button("copy", null, function () {
      (navigator.clipboard ? navigator.clipboard.writeText(pre.textContent) : Promise.reject(new Error("clipboard")))
        .then(function () { toast(t("copied")); }, function () {
          var r = document.createRange(); r.selectNodeContents(pre); var s = getSelection(); s.removeAllRanges(); s.addRange(r);
        });
    })]);
    function scriptSrc() { return location.origin + "/web/widget.js"; }
    function snippet() {
      if (!chosen) { pre.textContent = t("pickKey"); return; }
      var attrs = [["src", scriptSrc()], ["data-widget-key", chosen], ["data-lang", lang]];
      if (base()) attrs.push(["data-api", base()]);
      if (ws.value.trim()) attrs.push(["data-ws", ws.value.trim()]);
      pre.textContent = "<script " + attrs.map(function (a) { return a[0] + "=\"" + a[1].replace(/[&"<>]/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }) + "\""; }).join("\n        ") + " async></script>";
    }

    // live preview: an empty page in an iframe that loads widget.js with the chosen key and the
    // appearance in the form (unsaved changes show too), built with DOM calls
    var pv = section(root, "livePreview");
    pv.appendChild(el("p", "muted", t("previewNote", { origin: location.origin })));
    var frameBox = el("div", "preview"); pv.appendChild(frameBox);
    function preview() {
      if (!chosen) return;
      frameBox.textContent = "";
      var frame = el("iframe"); frame.id = "widget-preview"; frame.title = t("livePreview");
      frameBox.appendChild(frame);
      var doc = frame.contentDocument;
      doc.open(); doc.close();
      var s = doc.createElement("script");
      s.src = scriptSrc();
      var data = { widgetKey: chosen, lang: lang, open: "true", color: color.value,
                   greeting: lang === "zh" ? greetingZh.value : greetingEn.value };
      if (avatar.value.trim()) data.avatar = avatar.value.trim();
      if (base()) data.api = base();
      if (ws.value.trim()) data.ws = ws.value.trim();
      Object.keys(data).forEach(function (k) { s.dataset[k] = data[k]; });
      doc.body.appendChild(s);
    }
    load();
  }

  // -- engines ---------------------------------------------------------------------------------
  function renderEngines(root) {
    root.appendChild(el("p", "muted", t("engineNote")));
    var chainBox = section(root, "engineChain"), secretsBox = section(root, "secrets");
    chainBox.hidden = secretsBox.hidden = true;  // shown once the chain is loaded: no edit is lost to the load
    var chain = [], secretNames = [];
    var rowsBox = el("div"), warn = el("p", "warn"); warn.hidden = true;
    var names = el("datalist"); names.id = "secret-names";
    kids(chainBox, [warn, rowsBox, names,
      kids(el("div", "row-actions"), [
        button("addEngine", null, function () { collect(); chain.push({ name: "engine" + (chain.length + 1), kind: "openai" }); drawChain(); }),
        button("saveChain", "primary", save)])]);
    function entryOf(tr) {
      var v = function (n) { return tr.querySelector("[name=" + n + "]").value.trim(); };
      var e = { name: v("name"), kind: v("kind") };
      if (v("base_url")) e.base_url = v("base_url");
      if (v("model")) e.model = v("model");
      if (v("key_ref")) e.key_ref = v("key_ref");
      if (v("first_token_timeout_s")) e.first_token_timeout_s = Number(v("first_token_timeout_s"));
      return e;
    }
    function collect() { chain = Array.from(rowsBox.querySelectorAll("tbody tr")).map(entryOf); }
    function move(i, by) { collect(); var j = i + by; if (j < 0 || j >= chain.length) return; var x = chain[i]; chain[i] = chain[j]; chain[j] = x; drawChain(); }
    function drawChain() {
      rowsBox.textContent = "";
      rowsBox.appendChild(table(["#", "name", "kind", "baseUrl", "model", "keyRef", "timeout", "actions"], chain.map(function (e, i) {
        var key = input("key_ref", "text", e.key_ref || ""); key.setAttribute("list", "secret-names");
        var timeout = input("first_token_timeout_s", "number", e.first_token_timeout_s == null ? "" : e.first_token_timeout_s);
        timeout.min = "0.1"; timeout.max = "60"; timeout.step = "0.1"; timeout.className = "num";
        return row([String(i + 1), input("name", "text", e.name), select("kind", [["openai", "openai"], ["offline", "offline"]], e.kind || "openai"),
                    input("base_url", "url", e.base_url || ""), input("model", "text", e.model || ""), key, timeout,
                    kids(el("div", "row-actions"), [button("testEngine", null, function () { trial(e.name); }),
                                                    button("up", null, function () { move(i, -1); }), button("down", null, function () { move(i, 1); }),
                                                    button("remove", "danger", function () { collect(); chain.splice(i, 1); drawChain(); })])]);
      })));
    }
    // "Test": the saved engine of that name alone answers a short question, streamed
    var trialBox = el("div", "trial"); trialBox.id = "engine-trial"; trialBox.hidden = true;
    chainBox.appendChild(trialBox);
    function trial(name) {
      var answer = el("div", "answer"), meta = el("small", "muted", t("streaming"));
      trialBox.hidden = false; trialBox.textContent = "";
      kids(trialBox, [el("h4", null, t("testOf", { name: name })), answer, meta]);
      streamJson("/v1/admin/engines/" + encodeURIComponent(name) + "/test", {}, function (e) {
        if (e.event === "delta") answer.textContent += e.text;
        else if (e.event === "final") {
          meta.textContent = [t(e.status === "complete" ? "testOk" : "testFailed"), e.status, e.engine || "",
                              e.first_token_ms == null ? "" : t("firstToken", { ms: e.first_token_ms })].filter(Boolean).join(" · ");
          meta.className = e.status === "complete" ? "ok" : "error"; meta.dataset.done = "1";
        }
      }).catch(function (err) { meta.textContent = err.status === 404 ? t("testUnusable") : err.message; meta.className = "error"; meta.dataset.done = "1"; });
    }
    function draw(view) {
      chainBox.hidden = secretsBox.hidden = false;
      chain = view.chain; secretNames = view.secrets;
      warn.hidden = !view.missing_secrets.length;
      warn.textContent = t("missing", { names: view.missing_secrets.join(", ") });
      names.textContent = "";
      secretNames.forEach(function (s) { var o = el("option"); o.value = s.name; names.appendChild(o); });
      drawChain(); drawSecrets();
    }
    function save() {
      collect();
      call("PUT", "/v1/admin/engines", { chain: chain }).then(function (view) { draw(view); toast(t("saved")); }).catch(fail);
    }
    var secretList = el("div"); secretsBox.appendChild(secretList);
    function drawSecrets() {
      secretList.textContent = "";
      secretList.appendChild(table(["name", "updated", "actions"], secretNames.map(function (s) {
        return row([el("code", null, s.name), when(s.updated_at), button("remove", "danger", function () {
          if (!confirm(t("confirmDeleteSecret", { name: s.name }))) return;
          call("DELETE", "/v1/admin/engines/secrets/" + encodeURIComponent(s.name)).then(load).catch(fail);
        })]);
      })));
    }
    var value = input("secret", "password"); value.autocomplete = "off"; value.required = true;
    var sname = input("name"); sname.required = true; sname.pattern = "[A-Za-z0-9_.\\-]{1,64}";
    secretsBox.appendChild(form("inline", [field("name", sname), field("secretValue", value)], "setSecret", function (f) {
      call("PUT", "/v1/admin/engines/secrets/" + encodeURIComponent(sname.value.trim()), { secret: value.value })
        .then(function () { f.reset(); toast(t("saved")); load(); }).catch(fail);
    }));
    function load() { call("GET", "/v1/admin/engines").then(draw).catch(fail); }
    load();
  }

  // -- knowledge base --------------------------------------------------------------------------
  var KB_FILES = ".md,.markdown,.txt,.csv,.pdf,.docx";
  function renderKnowledge(root) {
    var head = el("p", "muted"); root.appendChild(head);
    var up = section(root, "upload");
    up.appendChild(el("p", "muted", t("uploadHelp")));
    var files = input("files", "file"); files.multiple = true; files.accept = KB_FILES;
    up.appendChild(form("inline", [files], "upload", function (f) { sendFiles(Array.from(files.files)).then(function () { f.reset(); load(); }); }));
    var docs = section(root, "documents"), list = el("div"), preview = el("div", "chunks"); preview.id = "chunks";
    kids(docs, [list, preview]);
    var tester = section(root, "searchTester");
    tester.appendChild(el("p", "muted", t("searchHelp")));
    var question = input("question", "search"); question.required = true; question.maxLength = 500;
    var hits = el("ol", "hits"); hits.id = "hits";
    tester.appendChild(form("inline", [field("question", question),
      field("topK", select("k", [["3", "3"], ["5", "5"], ["10", "10"]], "5"))], "search", function (f) {
      call("POST", "/v1/admin/knowledge/search", { question: question.value.trim(), k: Number(f.k.value) }).then(drawHits).catch(fail);
    }));
    tester.appendChild(hits);
    function drawHits(found) {
      hits.textContent = "";
      if (!found.length) { hits.appendChild(el("li", "muted", t("noHits"))); return; }
      found.forEach(function (h) {
        var li = el("li", "hit");
        var top = el("div", "hit-head");
        kids(top, [el("b", "score", h.score.toFixed(4)), el("span", null, h.document + (h.heading ? " · " + h.heading : "")),
                   el("small", "muted", t("ranks", { v: h.vector_rank == null ? "–" : h.vector_rank, k: h.keyword_rank == null ? "–" : h.keyword_rank }))]);
        kids(li, [top, el("div", "hit-text", h.content)]);
        hits.appendChild(li);
      });
    }
    function sendFiles(all) {
      return all.reduce(function (p, file) { return p.then(function () { return sendFile(file); }); }, Promise.resolve());
    }
    function sendFile(file, name) {
      var body = new FormData(); body.append("file", file, file.name);
      if (name) body.append("name", name);
      return call("POST", "/v1/admin/knowledge/files", body).then(function (r) {
        toast(t(r.truncated ? "uploadedCut" : "uploaded", { name: r.name, n: r.chunks == null ? "?" : r.chunks }));
      }).catch(fail);
    }
    function showChunks(name) {
      call("GET", "/v1/admin/knowledge/documents/" + encodeURIComponent(name) + "/chunks").then(function (chunks) {
        preview.textContent = "";
        kids(preview, [el("h4", null, t("chunksOf", { name: name, n: chunks.length }))]);
        chunks.forEach(function (c) {
          var box = el("div", "chunk");
          kids(box, [el("small", "muted", "#" + (c.ord + 1) + (c.heading ? " · " + c.heading : "")), el("div", null, c.content)]);
          preview.appendChild(box);
        });
      }).catch(fail);
    }
    function draw(kb) {
      head.textContent = t("kbVersion", { v: kb.version });
      list.textContent = "";
      if (!kb.documents.length) { list.appendChild(el("p", "muted", t("noDocs"))); return; }
      list.appendChild(table(["name", "kind", "chunks", "updated", "actions"], kb.documents.map(function (d) {
        var again = input("again", "file"); again.hidden = true; again.accept = KB_FILES;
        again.addEventListener("change", function () { if (again.files[0]) sendFile(again.files[0], d.name).then(load); });
        var tr = row([d.name, d.content_type, d.chunks, when(d.updated_at), kids(el("div", "row-actions"), [again,
          button("viewChunks", null, function () { showChunks(d.name); }),
          button("replace", null, function () { again.click(); }),
          button("remove", "danger", function () {
            if (!confirm(t("confirmDeleteDoc", { name: d.name }))) return;
            call("DELETE", "/v1/admin/knowledge/" + encodeURIComponent(d.name)).then(function () { toast(t("deleted")); preview.textContent = ""; load(); }).catch(fail);
          })])]);
        tr.dataset.name = d.name;
        return tr;
      })));
    }
    function load() {
      call("GET", "/v1/admin/knowledge/documents").then(draw).catch(function (err) {
        if (err.status === 503) { list.textContent = ""; list.appendChild(el("p", "warn", t("kbOff"))); up.hidden = tester.hidden = true; } else fail(err);
      });
    }
    load();
  }

  // -- the 话术 tuning workbench ----------------------------------------------------------------
  var EMOJI = ["none", "low", "medium", "high"];
  // -- learning loop: proposals from agents, the missing-knowledge queue, curated answers -------
  function renderLearning(root) {
    root.appendChild(el("p", "muted", t("learningHelp")));
    var review = section(root, "reviewList"), missing = section(root, "missingQueue"), curated = section(root, "curatedAnswers");
    var reviewBox = el("div"), missingBox = el("div"), curatedBox = el("div"), historyBox = el("div");
    review.appendChild(reviewBox); missing.appendChild(missingBox);
    function textArea(name, value, max) { var a = el("textarea"); a.name = name; a.rows = 3; a.maxLength = max; a.value = value || ""; return a; }

    function loadReview() { call("GET", "/v1/admin/learned-answers").then(drawReview).catch(fail); }
    function drawReview(items) {
      reviewBox.textContent = "";
      if (!items.length) { reviewBox.appendChild(el("p", "muted", t("noProposals"))); return; }
      items.forEach(function (p) {
        var card = el("div", "proposal"); card.dataset.id = String(p.id);
        var q = textArea("question", p.question, 500), a = textArea("answer", p.answer, 4000);
        function approve(target) {
          call("POST", "/v1/admin/learned-answers/" + p.id + "/approve", { target: target, question: q.value.trim(), answer: a.value.trim() })
            .then(function () { toast(t("approved")); loadReview(); loadCurated(); }).catch(fail);
        }
        kids(card, [el("small", "muted", t("method") + ": " + t("method_" + p.method) + " · " + when(p.created_at)),
                    field("question", q), field("answer", a),
                    kids(el("div", "row-actions"), [
                      button("approveCurated", "primary", function () { approve("curated"); }),
                      button("approveKnowledge", null, function () { approve("knowledge"); }),
                      button("reject", "danger", function () {
                        call("POST", "/v1/admin/learned-answers/" + p.id + "/reject").then(function () { toast(t("rejected")); loadReview(); }).catch(fail);
                      })])]);
        reviewBox.appendChild(card);
      });
    }

    function loadMissing() { call("GET", "/v1/admin/missing-knowledge").then(drawMissing).catch(fail); }
    function drawMissing(clusters) {
      missingBox.textContent = "";
      if (!clusters.length) { missingBox.appendChild(el("p", "muted", t("noClusters"))); return; }
      clusters.forEach(function (c) {
        var card = el("details", "cluster"); card.dataset.id = c.id;
        var kinds = Object.keys(c.kinds).map(function (k) { return t("kind_" + k) + " " + c.kinds[k]; }).join(" · ");
        card.appendChild(kids(el("summary"), [el("strong", null, c.question), el("small", "muted", "  " + t("asked", { n: c.conversations, at: when(c.last_at) }) + " · " + kinds)]));
        card.appendChild(el("h4", null, t("examples")));
        c.examples.forEach(function (x) { card.appendChild(el("div", "chunk", "[" + t("kind_" + x.kind) + "] " + x.question + (x.reply ? " → " + x.reply : "") + (x.detail ? " (" + x.detail + ")" : ""))); });
        var q = textArea("question", c.question, 500), a = textArea("answer", "", 4000);
        var target = select("target", [["curated", t("asCurated")], ["knowledge", t("asKnowledge")]], "curated");
        card.appendChild(form("stack", [field("question", q), field("answer", a), target], "writeAnswer", function () {
          call("POST", "/v1/admin/missing-knowledge/answer", { question: q.value.trim(), answer: a.value.trim(), target: target.value })
            .then(function () { toast(t("learned")); loadMissing(); loadCurated(); }).catch(fail);
        }));
        missingBox.appendChild(card);
      });
    }

    var newQ = textArea("question", "", 500), newA = textArea("answer", "", 4000);
    var tester = input("match", "search"); tester.maxLength = 2000;
    var verdict = el("p", "muted"); verdict.id = "match-result";
    kids(curated, [form("stack", [field("question", newQ), field("answer", newA)], "addCurated", function () {
      call("POST", "/v1/admin/curated-answers", { question: newQ.value.trim(), answer: newA.value.trim() })
        .then(function () { newQ.value = ""; newA.value = ""; toast(t("saved")); loadCurated(); }).catch(fail);
    }), curatedBox, historyBox, el("h4", null, t("matchTester")), form("inline", [tester], "matchTest", function () {
      call("POST", "/v1/admin/curated-answers/match", { question: tester.value.trim() }).then(function (m) {
        verdict.textContent = t("matchResult", { score: m.score.toFixed(2), threshold: m.threshold, verdict: m.answered ? t("willAnswer") : t("willNotAnswer") }) +
          (m.answer ? " · " + m.answer.question : "");
      }).catch(fail);
    }), verdict]);
    function loadCurated() { call("GET", "/v1/admin/curated-answers").then(drawCurated).catch(fail); }
    function drawCurated(answers) {
      curatedBox.textContent = "";
      if (!answers.length) { curatedBox.appendChild(el("p", "muted", t("noCurated"))); return; }
      curatedBox.appendChild(table(["question", "answer", "version", "actions"], answers.map(function (c) {
        var actions = el("div", "row-actions"), tr;
        function editForm() {
          var q = textArea("question", c.question, 500), a = textArea("answer", c.answer, 4000);
          actions.textContent = "";
          actions.appendChild(form("stack", [q, a, button("cancel", null, loadCurated)], "save", function () {
            call("PUT", "/v1/admin/curated-answers/" + c.id, { question: q.value.trim(), answer: a.value.trim() })
              .then(function () { toast(t("saved")); loadCurated(); }).catch(fail);
          }));
        }
        kids(actions, [button("edit", null, editForm),
          button("history", null, function () {
            call("GET", "/v1/admin/curated-answers/" + c.id + "/versions").then(function (vs) {
              historyBox.textContent = ""; historyBox.id = "curated-history";
              historyBox.appendChild(el("h4", null, t("history") + " · " + c.question));
              historyBox.appendChild(table(["version", "question", "answer", "changedBy", "changedAt"], vs.map(function (v) {
                return row(["v" + v.version + (v.active ? "" : " · " + t("deleted")), v.question, v.answer, v.changed_by || "", when(v.changed_at)]);
              })));
            }).catch(fail);
          }),
          button("remove", "danger", function () {
            if (!confirm(t("confirmDeleteCurated"))) return;
            call("DELETE", "/v1/admin/curated-answers/" + c.id).then(function () { toast(t("deleted")); loadCurated(); }).catch(fail);
          })]);
        tr = row([c.question, el("span", "clip", c.answer), "v" + c.version, actions]);
        tr.dataset.id = String(c.id);
        return tr;
      })));
    }
    loadReview(); loadMissing(); loadCurated();
  }

  function drawReplay(box, r) {
    box.textContent = "";
    box.appendChild(el("p", null, t("replayQuestions", { n: r.questions, kb: r.kb_version })));
    function pct(v) { return v == null ? "–" : (v * 100).toFixed(1) + "%"; }
    var figures = [["retrievalHitRate", "retrieval_hit_rate", pct], ["curatedHits", "curated_hits", String],
                   ["refusals", "refusals", String], ["refusalRate", "refusal_rate", pct], ["groundedRate", "grounded_rate", pct]];
    box.appendChild(table(["figure", "side_published", "side_draft"], figures.map(function (f) {
      var tr = row([t(f[0]), f[2](r.before[f[1]]), r.after ? f[2](r.after[f[1]]) : "–"]);
      tr.dataset.figure = f[1];
      return tr;
    })));
    box.appendChild(el("h4", null, t("changedQuestions")));
    if (!r.changed.length) { box.appendChild(el("p", "muted", t("noChange"))); return; }
    function said(o) { return o.refused ? t("refused") : t("answeredOk") + (o.grounded === false ? " · " + t("kind_unsupported") : ""); }
    r.changed.forEach(function (c) { box.appendChild(el("div", "chunk", c.question + " — " + said(c.before) + " → " + said(c.after))); });
  }

  function renderWorkbench(root) {
    root.appendChild(el("p", "muted", t("workbenchHelp")));
    var state = null, names = {};
    var editor = section(root, "draftTuning"), compareBox = section(root, "compare"), replayBox = section(root, "replay"), history = section(root, "versions");
    var prompt = el("textarea"); prompt.name = "system_prompt"; prompt.rows = 8; prompt.maxLength = 20000;
    var ctx = input("context_window", "number"); ctx.min = 1; ctx.max = 100;
    var emoji = select("emoji_frequency", EMOJI.map(function (e) { return [e, t("emoji_" + e)]; }));
    var pacing = input("reply_pacing_cps", "number"); pacing.min = 0; pacing.max = 1000;
    var delay = input("reply_first_delay_ms", "number"); delay.min = 0; delay.max = 5000;
    var fallback = input("enable_fallback", "checkbox");
    var fallbackLabel = kids(el("label", "check"), [fallback, el("span", null, t("fallbackOn"))]);
    var keywords = el("textarea"); keywords.name = "handoff_keywords"; keywords.rows = 2;
    var failures = input("handoff_after_failures", "number"); failures.min = 0; failures.max = 20;
    var status = el("p", "muted"); status.id = "draft-status";
    var note = input("note"); note.maxLength = 200; note.placeholder = t("publishNote");
    var knobs = el("div", "knobs");
    kids(knobs, [field("contextWindow", ctx), field("emojiFrequency", emoji), field("pacing", pacing),
                 field("firstDelay", delay), field("handoffAfter", failures), fallbackLabel]);
    kids(editor, [status, field("systemPrompt", prompt), knobs, field("handoffKeywords", keywords),
      kids(el("div", "row-actions"), [
        button("saveDraft", "primary", function () { saveDraft().then(function () { toast(t("saved")); load(); }).catch(fail); }),
        button("discardDraft", null, function () { call("DELETE", "/v1/admin/workbench/draft").then(load).catch(fail); }),
        note,
        button("publish", "primary", function () {
          if (!confirm(t("confirmPublish"))) return;
          saveDraft().then(function () { return call("POST", "/v1/admin/workbench/publish", { note: note.value.trim() }); })
            .then(function (v) { note.value = ""; toast(t("published", { v: v.version })); load(); }).catch(fail);
        })])]);
    function tuning() {
      return { system_prompt: prompt.value, context_window: Number(ctx.value), emoji_frequency: emoji.value,
               reply_pacing_cps: Number(pacing.value), reply_first_delay_ms: Number(delay.value),
               enable_fallback: fallback.checked, handoff_after_failures: Number(failures.value),
               handoff_keywords: keywords.value.split(/[\n,，]/).map(function (k) { return k.trim(); }).filter(Boolean) };
    }
    function fill(x) {
      prompt.value = x.system_prompt; ctx.value = x.context_window; emoji.value = x.emoji_frequency;
      pacing.value = x.reply_pacing_cps; delay.value = x.reply_first_delay_ms; fallback.checked = x.enable_fallback;
      failures.value = x.handoff_after_failures; keywords.value = x.handoff_keywords.join("\n");
    }
    function saveDraft() { return call("PUT", "/v1/admin/workbench/draft", tuning()); }

    // side by side: the published and the draft (the form as it is, saved or not) answers
    var question = input("question", "search"); question.maxLength = 500; question.required = true;
    var used = el("div", "used"); used.id = "compare-context";
    var columns = el("div", "columns"), panes = {};
    ["published", "draft"].forEach(function (side) {
      var pane = el("div", "pane"); pane.id = "answer-" + side;
      var meta = el("small", "muted"), text = el("div", "answer");
      kids(pane, [el("h4", null, t("side_" + side)), text, meta]);
      panes[side] = { text: text, meta: meta };
      columns.appendChild(pane);
    });
    kids(compareBox, [form("inline", [field("question", question)], "compareAnswers", function () {
      used.textContent = "";
      Object.keys(panes).forEach(function (k) { panes[k].text.textContent = ""; panes[k].meta.textContent = t("streaming"); });
      streamJson("/v1/admin/workbench/compare", { question: question.value.trim(), draft: tuning() }, function (e) {
        if (e.event === "context") {
          used.appendChild(el("h4", null, t("passagesUsed", { n: e.passages.length })));
          e.passages.forEach(function (p) { used.appendChild(el("div", "chunk", p)); });
          if (e.memory) { used.appendChild(el("h4", null, t("memoryUsed"))); used.appendChild(el("div", "chunk", e.memory)); }
        } else if (e.event === "delta") {
          panes[e.side].text.textContent += e.text;
        } else if (e.event === "final") {
          panes[e.side].text.textContent = e.text;
          panes[e.side].meta.textContent = [e.status, e.engine || "", e.answered ? "" : t("notAnswered")].filter(Boolean).join(" · ");
          panes[e.side].meta.dataset.done = "1";
        }
      }).catch(fail);
    }), columns, used]);

    // regression replay: recent visitor questions, published vs this draft
    var sample = input("sample", "number", 20); sample.min = 1; sample.max = 50;
    var engines = select("engines", [["offline", t("engines_offline")], ["tenant", t("engines_tenant")]], "offline");
    var replayOut = el("div"); replayOut.id = "replay-report";
    kids(replayBox, [el("p", "muted", t("replayHelp")), form("inline", [field("sample", sample), field("enginesUsed", engines)], "runReplay", function () {
      replayOut.textContent = t("replayRunning");
      call("POST", "/v1/admin/workbench/replay", { sample: Number(sample.value), engines: engines.value, draft: tuning() })
        .then(function (r) { drawReplay(replayOut, r); }).catch(function (err) { replayOut.textContent = ""; fail(err); });
    }), replayOut]);

    var list = el("div"); history.appendChild(list);
    function drawVersions(versions) {
      list.textContent = "";
      if (!versions.length) { list.appendChild(el("p", "muted", t("noVersions"))); return; }
      list.appendChild(table(["version", "publishedAt", "publishedBy", "note", "systemPrompt", "actions"], versions.map(function (v, i) {
        var tr = row(["v" + v.version + (i === 0 ? " · " + t("current") : ""), when(v.published_at), names[v.published_by] || v.published_by || "",
                      v.note, el("span", "clip", v.tuning.system_prompt || t("defaultPrompt")),
                      kids(el("div", "row-actions"), [
                        button("loadDraft", null, function () { fill(v.tuning); toast(t("loaded", { v: v.version })); }),
                        i === 0 ? null : button("rollback", "danger", function () {
                          if (!confirm(t("confirmRollback", { v: v.version }))) return;
                          call("POST", "/v1/admin/workbench/versions/" + v.version + "/rollback").then(function (n) { toast(t("published", { v: n.version })); load(); }).catch(fail);
                        })])]);
        tr.dataset.version = String(v.version);
        return tr;
      })));
    }
    function load() {
      call("GET", "/v1/admin/agents").then(function (all) { all.forEach(function (a) { names[a.id] = a.name; }); }, function () {})
        .then(function () { return call("GET", "/v1/admin/workbench"); }).then(function (w) {
          state = w;
          prompt.placeholder = t("defaultIs") + "\n" + w.default_prompt;
          fill(w.draft || w.published);
          status.textContent = w.draft ? t("editingDraft") : t("editingPublished");
          drawVersions(w.versions);
        }).catch(fail);
    }
    load();
  }

  // -- conversations -----------------------------------------------------------------------------
  function conversationFilters(f) {
    return { q: f.q.value.trim(), status: f.status.value, owner: f.owner.value,
             since: dayStart(f.since.value), until: dayStart(f.until.value, 1) };
  }
  function renderConversations(root) {
    var PAGE = 50, offset = 0, filters = {};
    var bar = form("filters", [
      field("query", input("q", "search")),
      field("status", select("status", [["", t("any")], ["open", t("status_open")], ["closed", t("status_closed")]])),
      field("owner", select("owner", [["", t("any")], ["bot", t("owner_bot")], ["queue", t("owner_queue")], ["human", t("owner_human")]])),
      field("since", input("since", "date")), field("until", input("until", "date")),
      button("exportCsv", null, function () { download("/v1/conversations/export" + query(Object.assign(conversationFilters(bar), { format: "csv", limit: 1000 })), "conversations.csv"); })
    ], "search", function () { filters = conversationFilters(bar); offset = 0; body.textContent = ""; search += 1; load(); });
    var search = 0;  // an answer to an earlier search is dropped
    root.appendChild(bar);
    var split = el("div", "split"), body = el("div", "list-pane"), detail = el("div", "detail-pane");
    detail.id = "transcript";
    kids(root, [kids(split, [body, detail])]);
    var more = button("more", null, function () { load(); });
    function load() {
      var asked = search;
      call("GET", "/v1/conversations" + query(Object.assign({ limit: PAGE, offset: offset }, filters))).then(function (found) {
        if (asked !== search) return;
        more.remove();
        var tb = body.querySelector("tbody");
        if (!tb) { body.appendChild(table(["updated", "visitor", "status", "owner", "lastMessage"], [])); tb = body.querySelector("tbody"); }
        found.forEach(function (c) {
          var tr = row([when(c.updated_at), c.customer_id || c.visitor_id.slice(0, 14), t("status_" + c.status),
                        t("owner_" + c.owner), el("span", "clip", c.last_text || "")]);
          tr.dataset.id = c.id; tr.className = "clickable";
          tr.addEventListener("click", function () { open(c.id); });
          tb.appendChild(tr);
        });
        offset += found.length;
        if (found.length === PAGE) body.appendChild(more);
      }).catch(fail);
    }
    // An image of the transcript: a thumbnail (its link expires in minutes) opening the picture.
    function picture(image) {
      var url;
      try { url = new URL(image.url, (base() || location.origin) + "/"); } catch (e) { return null; }
      if (!/^https?:$/.test(url.protocol)) return null;
      var a = el("a", "pic"); a.href = url.href; a.target = "_blank"; a.rel = "noopener noreferrer";
      var img = el("img"); img.src = url.href; img.alt = t("image"); img.loading = "lazy";
      if (image.width && image.height) { var k = Math.min(1, 200 / image.width, 200 / image.height); img.width = Math.round(image.width * k); img.height = Math.round(image.height * k); }
      a.appendChild(img);
      return a;
    }
    function open(id) {
      call("GET", "/v1/conversations/" + encodeURIComponent(id)).then(function (tr) {
        detail.textContent = "";
        var c = tr.conversation;
        kids(detail, [el("h3", null, t("transcript")), el("div", "muted", (c.customer_id || c.visitor_id) + " · " + t("status_" + c.status) + " · " + when(c.created_at))]);
        var rated = {};
        (tr.feedback || []).forEach(function (f) { rated[f.seq] = f; });
        tr.messages.forEach(function (m) {
          var who = m.role === "agent" && m.author ? m.author : t("r_" + m.role);
          var line = el("div", "line " + m.role);
          kids(line, [el("small", null, who + " · " + when(m.created_at))]);
          var pic = m.image && picture(m.image);
          if (pic) line.appendChild(pic);
          if (m.text || m.event || !pic) line.appendChild(el("div", null, m.text || m.event || ""));
          var f = rated[m.seq];  // the visitor's 👍/👎 on this reply, with the reason they gave
          if (f) line.appendChild(el("div", "feedback " + f.rating, (f.rating === "up" ? "👍" : "👎") + (f.reason ? " " + f.reason : "")));
          detail.appendChild(line);
        });
        if (tr.notes.length) {
          detail.appendChild(el("h4", null, t("notes")));
          tr.notes.forEach(function (n) { detail.appendChild(el("div", "note", (n.agent_name || n.agent_id) + ": " + n.text)); });
        }
        if (tr.csat) detail.appendChild(el("div", "csat", t("csat") + ": " + "★".repeat(tr.csat.score) + " " + (tr.csat.comment || "")));
      }).catch(fail);
    }
    load();
  }

  // -- audit log ---------------------------------------------------------------------------------
  function auditFilters(f) {
    return { actor_type: f.actor_type.value, action: f.action.value.trim(), target_type: f.target_type.value.trim(),
             since: dayStart(f.since.value), until: dayStart(f.until.value, 1) };
  }
  function renderAudit(root) {
    var PAGE = 100, filters = {}, last = null;
    var bar = form("filters", [
      field("actorType", select("actor_type", [["", t("any")], ["admin", "admin"], ["agent", "agent"], ["visitor", "visitor"], ["system", "system"]])),
      field("action", input("action")), field("targetType", input("target_type")),
      field("since", input("since", "date")), field("until", input("until", "date")),
      button("exportCsv", null, function () { download("/v1/admin/audit/export" + query(Object.assign(auditFilters(bar), { format: "csv" })), "audit.csv"); })
    ], "search", function () { filters = auditFilters(bar); last = null; body.textContent = ""; search += 1; load(); });
    var body = el("div"), search = 0;  // an answer to an earlier search is dropped
    kids(root, [bar, body]);
    var more = button("more", null, function () { load(); });
    var names = {};
    call("GET", "/v1/admin/agents").then(function (all) { all.forEach(function (a) { names[a.id] = a.name; }); }, function () {}).then(load);
    function load() {
      var asked = search;
      call("GET", "/v1/admin/audit" + query(Object.assign({ limit: PAGE, before_id: last }, filters))).then(function (entries) {
        if (asked !== search) return;
        more.remove();
        var tb = body.querySelector("tbody");
        if (!tb) { body.appendChild(table(["at", "actor", "action", "target", "detail"], [])); tb = body.querySelector("tbody"); }
        entries.forEach(function (e) {
          var actor = e.actor_type + (e.actor_id ? " · " + (names[e.actor_id] || e.actor_id) : "");
          var tr = row([when(e.at), actor, el("code", null, e.action),
                        (e.target_type || "") + (e.target_id ? " · " + e.target_id : ""), el("span", "clip", JSON.stringify(e.detail))]);
          tr.className = "clickable"; tr.dataset.id = String(e.id);
          tr.addEventListener("click", function () {  // the whole entry, below its row
            var open = tr.nextSibling && tr.nextSibling.classList && tr.nextSibling.classList.contains("entry");
            if (open) { tr.nextSibling.remove(); return; }
            var full = el("tr", "entry"), cell = el("td"); cell.colSpan = 5;
            cell.appendChild(el("pre", "entry-json", JSON.stringify(e, null, 2)));
            full.appendChild(cell); tr.after(full);
          });
          tb.appendChild(tr);
          last = e.id;
        });
        if (entries.length === PAGE) body.appendChild(more);
      }).catch(fail);
    }
  }

  // -- reports: plain SVG bars with the number beside each -----------------------------------
  var SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    var n = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text != null) n.textContent = text;
    return n;
  }
  function bars(items) {  // items: [[label, value]]
    var max = Math.max.apply(null, items.map(function (i) { return i[1]; }).concat([1]));
    var h = 24, w = 520, labelW = 120, chart = svg("svg", { "class": "bars", width: w, height: items.length * h + 4, role: "img" });
    items.forEach(function (item, i) {
      var y = i * h + 2, len = Math.round((w - labelW - 60) * item[1] / max);
      chart.appendChild(svg("text", { x: labelW - 8, y: y + 15, "text-anchor": "end" }, item[0]));
      chart.appendChild(svg("rect", { x: labelW, y: y + 3, width: Math.max(len, 1), height: h - 8, rx: 3 }));
      chart.appendChild(svg("text", { x: labelW + len + 6, y: y + 15, "class": "value" }, String(item[1])));
    });
    return chart;
  }
  function seconds(v) {
    if (v == null) return "–";
    if (v < 90) return Math.round(v) + " s";
    if (v < 5400) return (v / 60).toFixed(1) + " min";
    return (v / 3600).toFixed(1) + " h";
  }
  function percent(v) { return v == null ? "–" : (v * 100).toFixed(1) + "%"; }
  function figure(value, key) { return kids(el("div", "figure"), [el("b", null, value), el("span", null, t(key))]); }
  function renderReports(root) {
    var tz = (Intl.DateTimeFormat().resolvedOptions().timeZone) || "UTC";
    var range = form("filters", [field("since", input("since", "date")), field("until", input("until", "date")),
      button("exportCsv", null, function () { download("/v1/admin/reports/export" + query(period()), "report.csv"); })], "search", load);
    root.appendChild(range);
    var overview = section(root, "overview"), days = section(root, "perDay"), handoffs = section(root, "handoffReasons"),
        resolution = section(root, "resolutionFigures"), csat = section(root, "csatFigures"), unanswered = section(root, "unanswered");
    function period() { return { since: dayStart(range.since.value), until: dayStart(range.until.value, 1), tz: tz }; }
    function load() {
      var names = {};
      call("GET", "/v1/admin/reports" + query(period())).then(function (r) {
        overview.textContent = ""; overview.appendChild(el("h3", null, t("overview")));
        overview.appendChild(kids(el("div", "figures"), [
          figure(String(r.conversations), "conversationsCount"), figure(percent(r.deflection_rate), "deflection"),
          figure(percent(r.handoff_rate), "handoffRate"), figure(seconds(r.first_response.median_s), "firstResponse"),
          figure(seconds(r.resolution.median_s), "resolution")]));
        overview.appendChild(el("p", "muted", t("reportNote", { tz: r.time_zone, a: r.first_response.count, b: r.resolution.count })));
        days.textContent = ""; days.appendChild(el("h3", null, t("perDay")));
        days.appendChild(bars(r.days.map(function (d) { return [d.day, d.conversations]; })));
        days.appendChild(table(["day", "conversationsCount", "deflected", "handedOff", "ratings", "average"], r.days.map(function (d) {
          return row([d.day, d.conversations, d.deflected, d.handed_off, d.ratings, d.csat_average == null ? "–" : d.csat_average.toFixed(2)]);
        })));
        handoffs.textContent = ""; handoffs.appendChild(el("h3", null, t("handoffReasons")));
        if (r.handoff_reasons.length) handoffs.appendChild(bars(r.handoff_reasons.map(function (x) { return [t("reason_" + x.reason) === "reason_" + x.reason ? x.reason : t("reason_" + x.reason), x.count]; })));
        else handoffs.appendChild(el("p", "muted", t("none")));
        unanswered.textContent = ""; unanswered.appendChild(el("h3", null, t("unanswered")));
        unanswered.appendChild(el("p", "muted", t("unansweredNote")));
        if (r.unanswered.length) unanswered.appendChild(table(["question", "timesAsked", "lastAsked"], r.unanswered.map(function (u) { return row([u.question, u.count, when(u.last_asked)]); })));
        else unanswered.appendChild(el("p", "muted", t("none")));
        drawResolution(r);
        drawCsat(r);
      }).catch(fail);
      function drawResolution(r) {
        resolution.textContent = ""; resolution.appendChild(el("h3", null, t("resolutionFigures")));
        resolution.appendChild(kids(el("div", "figures"), [
          figure(percent(r.bot_resolved_rate), "botResolved"), figure(percent(r.handoff_rate), "handoffRate"),
          figure(percent(r.curated_hit_rate), "curatedHitRate"), figure(percent(r.grounded_rate), "groundedRate2"),
          figure(String(r.thumbs_down), "thumbsDown")]));
        resolution.appendChild(el("p", "muted", t("resolvedNote")));
        resolution.appendChild(el("h4", null, t("eachDay")));
        resolution.appendChild(table(["day", "conversationsCount", "botResolvedCol", "handedOff", "botRepliesCol", "curatedHitsCol", "groundedCol", "thumbsDown"], r.days.map(function (d) {
          return row([d.day, d.conversations, d.bot_resolved, d.handed_off, d.bot_replies, d.curated_hits, d.grounded + " / " + d.grounding_checked, d.thumbs_down]);
        })));
        if (!r.kb_versions.length) return;
        resolution.appendChild(el("h4", null, t("byKbVersion")));
        var byVersion = table(["kbVersionCol", "conversationsCount", "botResolved", "handedOff", "curatedHitRate", "groundedRate2", "thumbsDown"], r.kb_versions.map(function (v) {
          var tr = row(["v" + v.kb_version, v.conversations, percent(v.bot_resolved_rate), v.handed_off, percent(v.curated_hit_rate), percent(v.grounded_rate), v.thumbs_down]);
          tr.dataset.kbVersion = v.kb_version;
          return tr;
        }));
        byVersion.id = "by-kb-version";
        resolution.appendChild(byVersion);
      }
      function drawCsat(r) {
        call("GET", "/v1/admin/agents").then(function (all) { all.forEach(function (a) { names[a.id] = a.name; }); }, function () {})
          .then(function () { var p = period(); return call("GET", "/v1/admin/csat" + query({ since: p.since, until: p.until })); }).then(function (f) {
            csat.textContent = ""; csat.appendChild(el("h3", null, t("csatFigures")));
            csat.appendChild(kids(el("div", "figures"), [figure(String(f.count), "count"), figure(f.average == null ? "–" : f.average.toFixed(2), "average")]));
            csat.appendChild(el("h4", null, t("distribution")));
            csat.appendChild(bars(["5", "4", "3", "2", "1"].map(function (s) { return ["★".repeat(Number(s)), f.distribution[s] || 0]; })));
            var trend = r.days.filter(function (d) { return d.ratings; });
            if (trend.length) {
              csat.appendChild(el("h4", null, t("csatTrend")));
              csat.appendChild(bars(trend.map(function (d) { return [d.day, d.csat_average]; })));
            }
            if (f.by_agent.length) {
              csat.appendChild(el("h4", null, t("byAgent")));
              csat.appendChild(table(["agent", "count", "average"], f.by_agent.map(function (a) {
                return row([names[a.agent_id] || a.agent_id, a.count, a.average == null ? "–" : Number(a.average).toFixed(2)]);
              })));
            }
            if (r.csat_comments.length) {
              csat.appendChild(el("h4", null, t("comments")));
              r.csat_comments.forEach(function (c) { csat.appendChild(el("div", "comment", "★".repeat(c.score) + " " + c.comment + " · " + when(c.created_at))); });
            }
          }).catch(fail);
      }
    }
    load();
  }

  // -- super-admin: tenants ------------------------------------------------------------------
  function renderTenants(root) {
    var list = section(root), box = el("div"); list.appendChild(box);
    function load() {
      call("GET", "/v1/tenants").then(function (all) {
        box.textContent = "";
        box.appendChild(table(["tenant", "tenantName", "created"], all.map(function (x) { return row([el("code", null, x.id), x.name, when(x.created_at)]); })));
      }).catch(fail);
    }
    var pw = input("admin_password", "text"); pw.minLength = 10; pw.required = true;
    var id = input("id"); id.required = true; id.pattern = "[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}";
    var name = input("name"); name.required = true;
    var email = input("admin_email", "email"); email.required = true;
    section(root, "createTenant").appendChild(form("stack", [field("tenant", id), field("tenantName", name), field("adminEmail", email),
      field("adminPassword", pw), button("generate", null, function () { pw.value = randomPassword(); })], "add", function (f) {
      call("POST", "/v1/tenants", { id: id.value.trim(), name: name.value.trim(), admin_email: email.value.trim(), admin_password: pw.value })
        .then(function (r) { toast(t("tenantCreated", { id: r.tenant.id, key: r.widget_key.key })); f.reset(); load(); }).catch(fail);
    }));
    load();
  }

  // -- start -----------------------------------------------------------------------------------
  function start() {
    $("login").hidden = true; $("app").hidden = false;
    $("me-name").textContent = session.agent.name;
    $("me-org").textContent = (isSuper() ? "super-admin" : session.agent.tenant_id) + (session.api ? " · " + session.api : "");
    scheduleRefresh();
    show();
  }
  applyI18n();
  var lf = $("login-form");
  lf.tenant.value = params.get("tenant") || localStorage.getItem("kefu.admin.tenant") || "";
  // The API URL is never taken from the page's address: a crafted link could otherwise send the
  // password elsewhere. It is typed once (kept in this browser) or set by whoever hosts this
  // page in <meta name="kefu-admin-api" content="https://...">.
  var preset = document.querySelector("meta[name=kefu-admin-api]");
  lf.api.value = localStorage.getItem("kefu.admin.api") || (preset ? preset.content : "");
  if (lf.api.value) lf.querySelector("details").open = true;
  if (session && session.expiresAt > Date.now() + 5000) start();
  else { if (session) signedOut(t("signedOut")); $("login").hidden = false; }
})();
