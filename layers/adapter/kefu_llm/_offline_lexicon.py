"""Customer-service vocabulary for the offline engine: words that mean the same thing to a shop.

Each concept lists Chinese and English ways shoppers and shop policies say it ("money back",
「退的钱」 and "refund" are one concept; a phone, a laptop and 「耳机」 are electronics; a pool,
rain and 「进水」 are water damage). A concept shared by the question and a passage counts as a
matched term, in either language. The weight says how much a concept tells about what the
question is about: generic shop words (an order, paying, customer service) weigh little, so a
passage sharing only them with the question does not ground an answer.

English forms are matched on stemmed words (see ``stem``), Chinese forms as substrings (the
longest form wins). Forms are general shop vocabulary, not phrases of a particular knowledge
base.
"""

from __future__ import annotations

__all__ = [
    "AGNOSTIC_KINDS",
    "AMBIGUOUS",
    "BROADER",
    "CONCEPTS",
    "EN_STOP",
    "GENERIC_WORDS",
    "IMPLIED",
    "IMPLIED_WITHIN",
    "KINDS",
    "ZH_FILLER",
    "stem",
]


def stem(word: str) -> str:
    """A light English stemmer: plural, past and -ing forms share a stem."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("ches", "shes", "sses", "xes", "zes")) and len(word) > 4:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    elif word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]  # arrive / arriv(ed) / arriv(ing) share "arriv"
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "ls":
        word = word[:-1]  # shipp(ed) -> ship, dropp(ed) -> drop
    return word


# concept: (weight, Chinese forms, English forms)
CONCEPTS: dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]] = {
    "return": (1.0, ("退货", "退换", "退掉", "退回去", "寄回", "不想要", "不要了", "无理由",
                     "不合适", "不喜欢", "后悔", "退"),
               ("return", "send back", "send it back", "take back", "give back", "changed my mind",
                "change my mind", "don't want", "do not want", "doesn't fit", "does not fit",
                "don't like", "unwanted", "dont want", "doesnt fit", "dont like",
                "return request", "rma")),
    "exchange": (1.0, ("换货", "换一个", "换个", "换成", "调换", "以旧换新", "换大", "换小",
                        "换尺码", "换码"),
                 ("exchange", "swap", "trade in", "replacement", "replace")),
    "free": (0.5, ("免费", "不收费", "不要钱", "白送"),
             ("free", "free of charge", "no charge", "at no cost", "without charge")),
    "refund": (1.0, ("退款", "退钱", "退的钱", "钱退", "到账", "账上", "原路退回", "返还", "钱没到",
                     "钱还没", "钱一直没", "没收到钱"),
               ("refund", "money back", "paid back", "credited back",
                "get my money", "reversal", "chargeback")),
    "ship": (1.0, ("发货", "发出", "寄出", "出库", "发走", "发件", "寄过来", "发过来", "寄过去",
                   "发过去", "邮过来"),
             ("ship", "dispatch", "send out", "go out", "sent out", "post out", "sent", "leave the",
              "leave your warehouse", "be sent", "get sent", "mailed", "posted", "ship out",
              "shipped out")),
    "delivery": (0.6, ("送达", "到货", "收到货", "收货", "签收", "送到", "配送", "寄到", "到达",
                      "包裹", "快递", "到手"),
                 ("deliver", "delivery", "arrive", "arrival", "receive", "got", "get there",
                  "parcel", "package", "get my stuff", "get my order", "get my parcel",
                  "get my package", "get my things", "reach me", "show up")),
    "tracking": (1.0, ("物流单号", "快递单号", "运单号", "物流", "单号", "查件"),
                 ("tracking", "track", "waybill", "tracking number", "tracking code",
                  "tracking info", "tracking link", "waybill number", "where is my parcel",
                  "where is my package", "where is my order")),
    "shipping_fee": (1.0, ("运费", "包邮", "免运费", "免邮", "快递费", "配送费"),
                     ("shipping fee", "shipping cost", "shipping charge", "free shipping",
                      "shipping free", "shipping is free", "ship for free", "ship free",
                      "free delivery", "delivery free", "deliver for free", "delivery fee",
                      "delivery charge", "delivery cost", "postage fee", "how much is delivery",
                      "how much is shipping", "how much for delivery", "how much for shipping",
                      "cost of delivery", "cost of shipping", "pay for delivery",
                      "pay for shipping")),
    "region": (0.8, ("国外", "海外", "国际", "境外", "美国", "日本", "新加坡", "台湾", "香港",
                     "韩国", "英国", "德国", "法国", "加拿大", "澳大利亚",
                     "马来西亚", "泰国", "越南", "俄罗斯", "印度",
                     "澳门", "偏远", "新疆", "西藏", "乌鲁木齐", "拉萨",
                     "伦敦", "巴黎", "东京", "纽约", "首尔", "悉尼", "多伦多"),
               ("international", "internationally", "abroad", "overseas", "country",
                "united states", "usa",
                "america", "singapore", "japan", "europe", "uk", "australia", "canada",
                "hong kong", "macau", "taiwan", "korea", "germany", "france",
                "russia", "india", "malaysia", "thailand", "vietnam", "new zealand",
                "philippines", "indonesia", "mexico", "brazil", "xinjiang", "tibet", "urumqi",
                "lhasa", "london", "paris", "tokyo", "new york", "seoul", "sydney", "toronto")),
    "insurance": (1.0, ("运费险", "保险", "险"), ("insurance", "insured", "insure")),
    "modify": (1.0, ("修改", "更改", "改成", "改"), ("change", "modify", "edit", "update",
                                                   "correct", "amend")),
    # Delivery within the mainland: a policy for it does not answer a question about abroad.
    "domestic": (0.6, ("大陆", "内地", "国内", "北京", "上海", "广州", "深圳", "成都", "重庆",
                       "杭州", "南京", "武汉", "西安", "天津", "苏州", "长沙", "郑州", "沈阳",
                       "青岛", "厦门", "昆明", "哈尔滨"),
                 ("mainland", "domestic", "within china", "beijing", "shanghai", "guangzhou",
                  "shenzhen", "chengdu", "chongqing", "hangzhou", "nanjing", "wuhan", "xian",
                  "tianjin", "suzhou", "changsha", "zhengzhou", "shenyang", "qingdao", "xiamen",
                  "kunming", "harbin")),
    # A delivery service faster than the usual (not when the order leaves the warehouse).
    "fast_delivery": (1.0, ("当天送到", "当天到", "当天能到", "当日达", "次日达", "隔日达", "同城",
                            "闪送", "加急", "急送", "送货上门"),
                      ("same day delivery", "same-day delivery", "next day delivery",
                       "next-day delivery", "express delivery", "expedited", "express shipping",
                       "overnight shipping", "delivered today", "delivered tomorrow")),
    "invoice": (1.0, ("发票", "开票", "报销", "公司抬头", "抬头", "税号", "纳税人识别号"),
                ("invoice", "receipt", "fapiao", "vat", "tax id", "tax number", "company",
                 "expense claim", "expense report", "reimbursement", "reimburse",
                 "tax invoice", "billing name", "company name", "tax receipt")),
    # What a form asks the shopper to fill in: 「填哪些信息」, "what details do I enter".
    "form_fields": (0.5, ("填写", "填", "信息", "必填"),
                    ("fill in", "fill out", "enter", "details", "information", "info",
                     "form")),
    "email": (1.0, ("邮箱", "电子邮件", "邮件"), ("email", "e-mail", "inbox", "mailbox")),
    "member": (0.8, ("会员", "等级", "级别", "升级", "升到", "成为"),
               ("member", "membership", "tier", "status", "vip", "upgrade", "qualify",
                "become")),
    # A fee for being a member: a topic of its own (a tier rule does not answer it).
    "member_fee": (1.0, ("会员费", "年费", "月费", "会费", "开通费"),
                   ("membership fee", "annual fee", "monthly fee", "subscription", "member fee",
                    "yearly fee")),
    # A warranty bought on top of the shop's own: not what the shop's warranty says.
    "extended_warranty": (1.0, ("延保", "延长保修", "保修延长", "延长质保", "碎屏险", "意外险"),
                          ("extended warranty", "extend the warranty", "warranty extension",
                           "extra warranty", "additional warranty", "buy a warranty",
                           "purchase a warranty", "care plan", "protection plan")),
    # Paying back a price difference or matching another shop's price: no policy states it,
    # and 「退差价」 is no return.
    "price_protection": (1.0, ("差价", "降价", "价保", "保价", "比价"),
                         ("price match", "price matching", "price drop", "price drops",
                          "price dropped", "price protection", "refund the difference",
                          "difference in price", "price difference")),
    "gold": (1.0, ("金卡",), ("gold",)),
    "silver": (1.0, ("银卡",), ("silver",)),
    "discount": (0.8, ("折扣", "打折", "几折", "优惠", "折", "待遇", "福利", "好处", "权益",
                       "便宜"),
                 ("discount", "percent off", "money off", "perk", "benefit", "privilege",
                  "cheaper", "price off")),
    "coupon": (1.0, ("优惠券", "优惠卷", "代金券", "折扣券", "满减券", "领的券", "券", "红包",
                     "优惠码", "折扣码", "兑换码"),
               ("coupon", "one coupon", "voucher", "promo code", "discount code", "promo",
                "coupon code", "gift card", "gift voucher")),
    "stack": (1.0, ("叠加", "一起用", "同时用", "合并使用", "共用", "叠"),
              ("stack", "combine", "together", "at the same time", "plus", "on top of", "both",
               "at once", "use two", "use both", "multiple coupons",
               "in addition to", "along with", "as well as")),
    "expired": (1.0, ("过期", "失效", "到期"), ("expire", "expired", "lapsed")),
    "warranty": (1.0, ("保修", "质保", "保固", "免费修", "给保吗", "能保吗", "保不保", "包修",
                       "管修", "保修吗", "保内", "过保", "三包", "走保修"),
                 ("warranty", "guarantee", "free repair", "repair for free",
                  "repaired for free", "fix for free", "fixed for free", "fix it for free",
                  "under warranty", "in warranty", "out of warranty", "warranty period",
                  "repair it for free", "repair them for free", "fix them for free",
                  "repaired it for free", "get it fixed for free", "get it repaired for free")),
    "repair": (0.8, ("维修", "修好", "修理", "寄修", "送修", "返修", "报修", "修"),
               ("repair", "fix", "mend", "service", "servicing")),
    "claim": (0.8, ("申请", "办理", "提交", "提出", "发起", "报修", "售后", "走保修"),
              ("claim", "make a claim", "submit", "file", "request", "initiate", "lodge",
               "raise", "open a case", "start a", "begin a", "apply for", "after-sales",
               "after sales")),
    # What a claim or request needs from the shopper: 「需要准备啥」, "what do I need to send".
    "provide": (0.5, ("提供", "准备", "材料", "资料", "凭证", "证明", "附上", "上传"),
                ("provide", "prepare", "document", "proof", "evidence", "attach", "upload",
                 "what do i need", "need to send", "need to provide", "need to give")),
    # Money the shopper has spent with the shop over time: the threshold of a member tier.
    "spend": (0.6, ("消费", "累计", "花了", "花费", "一共买", "总共买", "累积"),
              ("spend", "spent", "spending", "cumulative", "in total", "total spend")),
    "water": (1.0, ("进水", "泡水", "浸水", "落水", "淋雨", "掉水里", "马桶", "掉进", "洒", "泼",
                      "洗衣机", "水洗", "洗了", "受潮", "潮湿", "淋湿", "雨", "湿", "汗", "水"),
              ("water", "pool", "rain", "wet", "liquid", "spill", "sea", "toilet", "sink",
               "coffee", "tea", "juice", "drink", "milk", "soaked", "splash", "washing machine",
               "washer", "laundry", "washed", "shower", "bath", "bathtub", "puddle", "river",
               "lake", "moisture", "humid", "damp", "submerged", "sweat", "beer", "wine",
               "soda")),
    "physical_damage": (1.0, ("人为损坏", "摔坏", "摔碎", "摔裂", "摔", "碰坏", "压坏", "掉地上",
                                "碎", "裂", "不小心"),
                        ("physical damage", "drop", "fell", "fall", "crack", "smash",
                         "shatter", "dent", "bent", "stepped on", "sat on", "knocked",
                         "accident", "accidental")),
    "teardown": (1.0, ("私自拆机", "拆机", "拆过", "拆开", "自己修", "自己拆", "第三方维修", "刷机",
                       "越狱", "改装"),
                 ("unauthorised repair", "unauthorized repair", "unauthorised", "unauthorized",
                  "third party", "local shop", "repair shop",
                  "opened it", "opened up", "open it up", "took it apart", "fix it myself",
                  "fixed it myself", "repair it myself", "repaired it myself", "diy",
                  "jailbreak", "jailbroken", "rooted", "modded", "flashed")),
    "covered": (0.5, ("保修范围", "范围内", "包括", "覆盖"),
                ("cover", "covered", "valid", "void", "voided", "invalidate")),
    "electronics": (0.6, ("电子产品", "数码", "手机", "耳机", "电脑", "笔记本", "平板", "相机",
                          "手表", "手环", "音箱", "电器", "显示器", "键盘", "鼠标", "路由器",
                          "电视",                           "游戏机",
                          "投影仪", "打印机", "电子书", "吹风机", "剃须刀", "空气炸锅"),
                    ("electronics", "electronic", "phone", "smartphone", "laptop", "notebook",
                     "computer", "pc", "headphone", "headset", "earphone", "earbud", "airpod",
                     "tablet", "ipad", "camera", "watch", "smartwatch", "fitness tracker",
                     "speaker", "device", "gadget", "monitor", "keyboard", "mouse", "router",
                     "tv", "television", "console", "kindle", "e-reader", "printer", "projector",
                     "drone", "hair dryer", "shaver", "appliance")),
    # Goods the policies do not tell apart: naming one says little about the question.
    "goods": (0.2, ("衣服", "裤子", "鞋子", "鞋", "颜色", "尺码", "尺寸", "款式", "色差", "裙子",
                    "外套", "包包", "化妆品", "护肤品",
                    "玩具", "书", "杯子", "家具", "屏幕", "外壳", "配件", "零件", "东西", "宝贝"),
              ("jacket", "coat", "shirt", "t-shirt", "dress", "shoe", "sneaker", "trouser",
               "pant", "jean", "sweater", "hoodie", "bag", "toy", "book", "mug", "furniture",
               "screen", "case", "part", "accessory", "colour", "color", "size", "style")),
    "battery": (1.0, ("电池", "充电器", "充电宝", "移动电源", "电量", "续航"),
                ("battery", "charger", "power bank", "powerbank", "charging brick",
                 "battery life")),
    "fault": (0.6, ("故障", "坏了", "坏掉", "不能用", "失灵", "问题", "没声音", "没反应",
                    "开不了机", "开不开机", "不开机", "黑屏", "死机", "不充电", "充不进电",
                    "充不上电", "不亮", "不灵", "卡顿", "发烫", "闪屏", "充不满", "掉电", "耗电快",
                    "不好用", "异响", "杂音", "用不了", "没法用", "毛病", "坏点", "亮点", "漏光",
                    "划痕"),
              ("fault", "broken", "broke", "defect", "not working", "faulty", "stopped working",
               "stop working", "won't boot", "wont boot", "doesn't boot", "not booting",
               "won't start", "won't turn on", "doesn't turn on", "not turning on", "dead",
               "not charging", "stopped charging", "won't charge", "doesn't charge",
               "no sound", "malfunction", "glitch", "wont turn on", "doesnt turn on",
               "dont work", "doesnt work", "not work", "stopped holding charge",
               "holding charge", "hold charge", "hold a charge", "holding a charge",
               "drain", "overheat", "crash", "freeze", "frozen", "flicker", "stuck",
               "wont charge", "doesnt charge", "dead pixel", "not responding", "unresponsive",
               "keeps restarting")),
    "photo": (0.6, ("照片", "图片", "拍照"), ("photo", "picture", "image")),
    "postage": (1.0, ("免费寄修", "寄修地址", "寄回运费", "面单"),
                ("postage", "prepaid", "label", "return label", "shipping label", "pay to post",
                 "pay to send", "post it to you", "send it to you", "post my")),
    "where": (0.3, ("在哪里", "在哪儿", "在哪", "哪里", "哪儿", "查看", "看到", "查到", "找到",
                    "入口", "点击", "打开", "进入", "按钮", "页面", "菜单", "界面", "链接", "网页",
                    "官网"),
              ("where", "find", "listed", "located", "see", "view", "look up", "open", "go to",
               "click", "tap", "start", "button", "link", "menu", "page", "tab", "app",
               "website", "site", "in the app", "online")),
    "count": (0.6, ("一张", "两张", "几张", "多张", "一个", "两个", "几个", "多个", "一次", "最多",
                    "上限", "限用", "限"),
              ("one coupon", "one per", "only one", "just one", "one at a time", "two", "three",
               "single", "multiple", "several", "more than one", "limit",
               "how many", "maximum", "max", "at most")),
    "order": (0.3, ("订单", "下单", "单子", "下的单", "拍下", "购物车", "结算", "结账"),
              ("order", "ordering", "purchase", "checkout", "check out", "cart", "basket")),
    "pay": (0.4, ("付款", "支付", "付的款", "付钱", "付了款"), ("pay", "paid", "payment")),
    "contact_number": (1.0, ("电话", "热线", "联系方式", "手机号"),
                       ("phone number", "telephone", "hotline", "call", "contact number")),
    "support": (0.3, ("客服", "人工", "在线客服"), ("support", "agent", "customer service")),
    "next_day": (0.6, ("次日", "第二天", "隔天", "明天", "翌日"), ("next day", "tomorrow")),
    "clock": (0.5, ("晚上", "下午", "上午", "早上", "中午", "凌晨", "傍晚", "半夜", "深夜", "夜里"),
              ("morning", "afternoon", "evening", "tonight", "noon", "night", "midnight",
               "late night", "overnight")),
    "review": (0.8, ("审核", "审批", "批准"), ("approve", "approval", "review", "accepted")),
    "points": (1.0, ("积分", "点数"), ("points", "loyalty", "reward points")),
    "today": (0.6, ("今天", "当天", "今日", "马上"), ("today", "same day", "right away")),
    "working_day": (0.5, ("工作日", "周一到周五"), ("weekday", "working day", "business day")),
    "credit_card": (1.0, ("信用卡",), ("credit card",)),
    "pay_method": (0.8, ("原路", "原支付方式", "支付方式", "付款方式", "支付账户", "银行卡", "余额",
                         "账户", "卡里", "卡",
                         "卡上"),
                   ("payment method", "original payment", "card", "paid with", "same card",
                    "account", "debit card", "bank card", "bank account")),
    "how_long": (0.4, ("多久", "多长时间", "多长", "几天", "几年", "多少年", "几个月", "多少天",
                       "什么时候", "多快", "期限", "啥时候", "啥时", "几时", "多会儿", "截单",
                       "截止", "时限", "哪天", "几号", "从什么时候"),
                 ("how long", "how many day", "when", "how quickly", "how fast", "how soon",
                  "time limit", "deadline", "cutoff", "period", "window")),
}

# Forms that say one of several concepts, the context deciding which, the usual sense first:
# 「邮费」 is mostly the shipping fee of an order, sometimes the postage of sending something
# in. A question using one is answered by a unit stating the usual sense, or (at 3/4 of the
# weight, so the usual sense wins a tie) another; a passage using one states them all.
AMBIGUOUS: dict[str, tuple[str, ...]] = {
    "邮费": ("shipping_fee", "postage"),
}

# A concept and the broader one a policy may state instead: a rule for members covers Gold
# members, a rule for the payment method covers a credit card.
BROADER = {"gold": "member", "silver": "member", "credit_card": "pay_method"}

# What a unit about one concept answers although it never names it: a warranty or a repair is
# about faults (a unit stating the warranty answers "it stopped working, is it covered?").
IMPLIED = {"fault": ("warranty", "repair")}

# What a unit about one concept answers when the question is about it too: in a question about
# a repair, sending the item and getting it back are the repair's mail-in ("sent my phone in
# for repair, how long?", 「送修多久能寄回来」), which a unit about repairs answers.
IMPLIED_WITHIN = {"repair": ("ship", "return")}

# Kinds of goods a policy may tell apart (a one-year warranty for electronics). A unit that
# names none states its rule for every kind, so it answers a question naming any of them
# ("the headphones I got on Monday" to a return policy for any item).
KINDS = ("electronics", "goods", "battery")
AGNOSTIC_KINDS = ("electronics", "goods")

# English words that never decide what a question is about.
EN_STOP = frozenset(
    "a an the is are was were be been to of and or in on at for with my your i you we it this "
    "that do does did can could would will how what when where which who why please me our us "
    "from by as if any some there have has had get after before up so not no just about item "
    "thing product something stuff bought buy still too late want need like know tell much many "
    "long quickly fast until take happen ok hi hello thank thanks am im under ago back "
    "something anything s t let use using per steps step process procedure way go goes "
    "going happen happens them they their its he she his her him mine yours myself yourself "
    "without while being till actually whats m ve ll re d st nd rd th hey u ur guys guy like "
    "lol pls plz yeah ya yes or um btw hmm ok okay wondering wonder help asap thx ty wanna gonna "
    "gotta cant dont wont didnt doesnt "
    "isnt arent wasnt havent ive youre thats theres whats now currently yet once around roughly "
    "approximately kind sort one ones".split()
)
# English words that say little: they count, but weigh like generic concepts.
GENERIC_WORDS = frozenset(
    "day time week send spare new apply stop start change work keep put come say try seem leave "
    "show turn mean allow give happen become still again already really actually just "
    "usually normally also even ever able sure okay fine possible "
    "question problem issue wrong mum mom dad wife husband son daughter friend sister brother "
    "family far total overall kid child children baby toddler move moving relocate normal "
    "nothing only issue monday tuesday wednesday thursday friday saturday sunday".split()
)
# Chinese question words and fillers, removed before bigrams are taken.
ZH_FILLER = (
    "请问", "你们", "我们", "我的", "你好", "您好", "是什么", "什么", "怎么样", "怎么", "怎样",
    "如何", "哪里", "哪些", "哪个", "多少", "可以", "能不能", "有没有", "是否", "一下", "想要",
    "需要", "还能", "还可以", "能够", "能", "想", "吗", "呢", "吧", "啊", "呀", "了", "的", "我",
    "你", "要", "会", "还", "给", "就", "都", "也", "和", "在", "是", "有", "不", "一般", "大概",
    "东西", "商品", "买", "才", "成", "到", "以后", "后", "流程", "步骤", "操作", "手续",
    "写", "填", "弄", "办", "从", "开始", "算起", "算", "之后", "以后", "的时候",
    # directional complements: 「退回来」 is 退, 「寄过去」 is 寄
    "回来", "回去", "过来", "过去", "出来", "起来", "上去", "下来",
    # pronouns, demonstratives and adverbs that never name a subject
    "这个", "那个", "这张", "那张", "这", "那", "自己", "直接", "干嘛", "干什么", "啥", "时候",
    "被", "把", "去", "行", "另外", "刚刚", "刚", "帮忙", "帮我", "帮", "再", "还是", "然后",
    "已经", "一直", "怎么办", "这种情况", "情况", "好几天", "正常", "的话", "话", "太多", "跟",
    "妈妈", "我妈", "老公", "老婆", "朋友", "孩子", "爸爸", "家人",
    "急着用", "急用", "着急", "昨天", "前天", "上次", "其实",
    # chat openers and colloquial question words: 「亲，在吗」, 「麻烦问一下」, 「咋」
    "可不可以", "行不行", "能否", "可否", "在吗", "亲亲", "亲", "麻烦", "问一下", "问下", "想问",
    "请教", "谢谢", "咋样", "咋办", "咋", "为啥", "嘛", "哈", "哦", "噢", "呗",
    "是不是", "一样", "现在", "目前", "人在", "一共", "总共", "前前后后", "走",
    "周一", "周二", "周三", "周四", "周五", "周六", "周日", "星期一", "星期二", "星期三", "星期四",
    "星期五", "星期六", "星期日", "星期天",
)
