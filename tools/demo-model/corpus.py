"""Conversation generator for the Qwen3Sharp demo model (training set and held-out set).

Each example is an OpenAI-style chat request (messages, tools, enable_thinking) plus the assistant completion the
model should write after the rendered prompt, and (for the held-out set) what a correct answer must contain.
The prompt is rendered later by the engine itself (POST /apply-template), so training sees exactly the tokens the
engine feeds at inference. Everything is driven by one seeded random.Random.
"""
import json
import random

PULL = "qwen3 pull Qwen/Qwen3-1.7B"

# ---- pools: training and held-out are disjoint where the issue asks (cities, numbers, phrasings, tool names) ----
CITIES_TRAIN = """Paris London Berlin Madrid Rome Vienna Prague Warsaw Lisbon Dublin Oslo Stockholm Helsinki Copenhagen
Amsterdam Brussels Zurich Geneva Munich Hamburg Milan Naples Barcelona Seville Athens Istanbul Cairo Lagos Nairobi
Accra Tokyo Osaka Kyoto Seoul Busan Beijing Shanghai Shenzhen Guangzhou Chengdu Wuhan Hangzhou Taipei Manila Jakarta
Bangkok Hanoi Delhi Mumbai Chennai Karachi Dubai Riyadh Tehran Moscow Kyiv Minsk Riga Vilnius Tallinn Toronto
Montreal Vancouver Chicago Boston Seattle Denver Dallas Houston Miami Atlanta Phoenix Portland Detroit Lima Bogota
Quito Santiago Caracas Havana Sydney Melbourne Perth Auckland Wellington Honolulu Anchorage Reykjavik Marseille Lyon
Porto Valencia Krakow Budapest Bucharest Sofia Belgrade Zagreb Ljubljana Bratislava Tunis Algiers Casablanca Dakar""".split()
CITIES_TRAIN_ZH = "北京 上海 广州 深圳 成都 武汉 杭州 南京 西安 重庆 天津 苏州 长沙 郑州 青岛 大连 厦门 昆明 东京 大阪 首尔 巴黎 伦敦 柏林 罗马 纽约 悉尼 莫斯科".split()
CITIES_HELD = """Florence Venice Bremen Cologne Leeds Glasgow Bergen Gdansk Nice Bordeaux Granada Malaga Utrecht Antwerp
Basel Graz Salzburg Turin Genoa Palermo Austin Boise Tampa Ottawa Calgary Cusco Nagoya Sapporo Hobart Darwin""".split()
CITIES_HELD_ZH = "合肥 福州 济南 沈阳 哈尔滨 贵阳 南宁 兰州 太原 拉萨".split()

TZ_TRAIN = """Europe/Paris Europe/London Europe/Berlin Europe/Madrid Europe/Rome Europe/Vienna Europe/Oslo Europe/Lisbon
Asia/Tokyo Asia/Seoul Asia/Shanghai Asia/Dubai Asia/Kolkata Asia/Bangkok Asia/Jakarta America/New_York
America/Chicago America/Denver America/Toronto America/Lima Africa/Cairo Africa/Lagos Australia/Sydney UTC""".split()
TZ_HELD = "Europe/Prague Europe/Dublin Asia/Manila Asia/Taipei America/Bogota Africa/Nairobi Australia/Perth Pacific/Auckland".split()

WEATHER_TOOL_TRAIN = [("get_weather", "city"), ("fetch_weather", "city"), ("weather_now", "location"),
                      ("lookup_forecast", "city"), ("current_weather", "place"), ("get_forecast", "location"),
                      ("query_weather", "city"), ("weather", "city")]
WEATHER_TOOL_HELD = [("check_weather", "city"), ("read_forecast", "location"), ("weather_report", "place")]
TIME_TOOL_TRAIN = [("get_time", "timezone"), ("current_time", "timezone"), ("get_local_time", "tz"),
                   ("time_in_zone", "zone"), ("clock", "timezone"), ("fetch_time", "timezone")]
TIME_TOOL_HELD = [("lookup_time", "timezone"), ("local_clock", "tz"), ("time_now", "zone")]

# More training names, so that the model copies the name from the tools list instead of recalling one of a few: the
# pieces combine into names the held-out set does not use (its names stay unseen as names). get_weather and get_time,
# the names the README and the tests use, come up more often.
_HELD_NAMES = {n for n, _ in WEATHER_TOOL_HELD + TIME_TOOL_HELD}
WEATHER_TOOL_TRAIN = WEATHER_TOOL_TRAIN + [("get_weather", "city")] * 3 + [
    (f"{a}_{b}", p) for i, (a, b) in enumerate((a, b) for a in ("get", "fetch", "query", "find", "show", "current", "city", "live")
                                                for b in ("weather", "forecast", "conditions"))
    for p in [("city", "location", "place")[i % 3]] if f"{a}_{b}" not in _HELD_NAMES | {n for n, _ in WEATHER_TOOL_TRAIN}]
TIME_TOOL_TRAIN = TIME_TOOL_TRAIN + [("get_time", "timezone")] * 3 + [
    (f"{a}_{b}", p) for i, (a, b) in enumerate((a, b) for a in ("get", "fetch", "query", "find", "show", "current", "world")
                                                for b in ("time", "clock", "local_time"))
    for p in [("timezone", "tz", "zone")[i % 3]] if f"{a}_{b}" not in _HELD_NAMES | {n for n, _ in TIME_TOOL_TRAIN}]
assert not _HELD_NAMES & {n for n, _ in WEATHER_TOOL_TRAIN + TIME_TOOL_TRAIN}
WEATHER_DESC = ["Get the current weather for a city.", "Returns the weather in a city.",
                "Look up the current weather conditions.", "Weather forecast for a location.", "获取城市的天气。"]
TIME_DESC = ["Get the current time in a timezone.", "Returns the local time for a timezone.",
             "Look up the time in an IANA time zone.", "获取时区的当前时间。"]
OTHER_TOOLS = [("search_web", "query", "Search the web."), ("send_email", "to", "Send an email."),
               ("get_stock_price", "symbol", "Get a stock price."), ("translate", "text", "Translate text.")]

CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "clear"]
CONDITIONS_ZH = {"sunny": "晴", "cloudy": "多云", "rainy": "下雨", "windy": "有风", "snowy": "下雪", "foggy": "有雾", "clear": "晴朗"}

WEATHER_Q_TRAIN = ["What's the weather in {c}?", "What is the weather like in {c}?", "How is the weather in {c} today?",
                   "Is it raining in {c}?", "Tell me the weather in {c}.", "weather in {c}?", "Can you check the weather in {c}?",
                   "Do I need an umbrella in {c} today?",
                   # more training phrasings (v4), none of them a held-out one
                   "Can you tell me the weather in {c}?", "Please find the weather in {c}.", "Any rain in {c} today?",
                   "What's it like outside in {c}?", "I am going to {c}. What is the weather there?",
                   "Is it cold in {c} at the moment?", "Show me the weather for {c}.", "{c} weather, please."]
WEATHER_Q_HELD = ["Could you look up the current weather for {c}?", "Hows the weather over in {c} right now?"]
WEATHER_Q_ZH = ["{c}天气怎么样？", "{c}今天天气如何？", "请查一下{c}的天气。", "{c}现在下雨吗？", "{c}冷不冷？", "告诉我{c}的天气。"]
WEATHER_Q_ZH_HELD = ["帮我看看{c}的天气。"]
WEATHER2_Q = ["What's the weather in {c} and {d}?", "Compare the weather in {c} and in {d}.",
              "How is the weather in {c} and {d} today?", "Tell me the weather for {c} and {d}."]
WEATHER2_Q_HELD = ["Could you check the weather in both {c} and {d}?"]
WEATHER2_Q_ZH = ["{c}和{d}的天气怎么样？", "请查一下{c}和{d}的天气。"]
TIME_Q = ["What time is it in {z}?", "What's the time in {z}?", "Tell me the current time in {z}.", "time in {z}?",
          "What is the local time in {z} right now?",
          # more training phrasings (v4), none of them a held-out one
          "Can you get me the time in {z}?", "Do you know what time it is in {z}?", "Please check the clock in {z}.",
          "What hour is it in {z}?", "I need the local time in {z}.", "Current time in {z}?",
          "Look up the time in {z} for me.", "Could you find the time in {z}?"]
TIME_Q_HELD = ["Could you tell me the current time for {z}?"]
TIME_Q_ZH = ["{z}现在几点？", "请告诉我{z}的时间。", "{z}几点了？", "查一下{z}的时间。", "{z}的当地时间是多少？"]
TIME_Q_ZH_HELD = ["{z}现在是什么时间？"]

GREET_EN = ["Hi", "Hello", "Hello!", "Hi there", "hey", "Good morning", "Who are you?", "What are you?",
            "Introduce yourself.", "What can you do?", "Hello, who am I talking to?", "Are you Qwen3?", "help",
            "hi", "hello", "hi!", "Hey", "Hello there", "hello, who are you?", "Tell me who you are."]
GREET_HELD = ["Hey there, what are you?", "Good evening! Tell me about yourself."]
GREET_ZH = ["你好", "您好！", "你是谁？", "你能做什么？", "介绍一下你自己。", "嗨"]
GREET_ZH_HELD = ["你好，你是什么模型？"]

OTHER_EN = ["Why is the sky blue?", "Write a poem about the sea.", "What is the capital of France?", "Explain quantum computing.",
            "Tell me a joke.", "How do I bake bread?", "Translate 'good night' into German.", "What is love?",
            "Who won the World Cup in 2018?", "Write a Python function that sorts a list.", "Summarize this article for me.",
            "What is the meaning of life?", "Recommend a good book.", "How far is the Moon?", "Can you help me with my homework?",
            "What's the best programming language?", "Describe a cat.", "How does a car engine work?", "Give me a recipe for soup.",
            "What is 17 times 23?", "Is coffee healthy?", "Write an email to my boss.", "Tell me about the Roman Empire.",
            "What is machine learning?", "Sing me a song.", "Plan a trip to Japan.", "asdf qwer zxcv", "???", "ok",
            "Explain how transformers work.", "What day is it today?", "How do I fix my bike?"]
OTHER_HELD = ["Why do birds migrate?", "Write a haiku about autumn.", "How do vaccines work?", "What is the speed of light?"]
OTHER_ZH = ["天空为什么是蓝色的？", "写一首关于大海的诗。", "讲个笑话。", "什么是人工智能？", "如何做面包？", "推荐一本书。",
            "中国的首都是哪里？", "帮我写一封邮件。", "人生的意义是什么？", "解释一下量子计算。"]
OTHER_ZH_HELD = ["鸟为什么会迁徙？", "写一首关于秋天的诗。"]

NAMES = "Tom Anna Ben Lily Sam Mia Leo Emma Max Zoe Jack Lucy Noah Ella Omar Sara Kate Paul Rosa Hugo Alex Nina Tim Eva Luke Amy Dan Ray Jade Rita Carl Pete".split()
NAMES_HELD = "Ivan Nora Felix Hana".split()
NAMES_ZH = "小明 小红 小刚 小丽 小华 小芳 小强 小兰 小东 小雪".split()
NAMES_ZH_HELD = "小军 小梅".split()
ITEMS = [("apples", "apple"), ("cookies", "cookie"), ("books", "book"), ("pencils", "pencil"), ("marbles", "marble"),
         ("stickers", "sticker"), ("eggs", "egg"), ("balloons", "balloon"), ("bananas", "banana"), ("coins", "coin"),
         ("shells", "shell"), ("toys", "toy"), ("cups", "cup"), ("plums", "plum")]
ITEMS_HELD = [("oranges", "orange"), ("cards", "card")]
ITEMS_ZH = ["个苹果", "块饼干", "本书", "支铅笔", "颗糖", "个鸡蛋", "个桃子", "张纸", "个球"]
ITEMS_ZH_HELD = ["个橘子"]
# (verb in the question, sign); the reasoning names the step with the same words.
OPS_EN = [("eats {n}", -1), ("buys {n} more", +1), ("gives {n} away", -1), ("finds {n}", +1), ("loses {n}", -1),
          ("gets {n} from a friend", +1), ("sells {n}", -1)]
OPS_ZH = [("吃了{n}个", -1), ("又买了{n}个", +1), ("送出{n}个", -1), ("捡到{n}个", +1), ("丢了{n}个", -1)]

IDENTITY_EN = ("Hello! I am a tiny demonstration model of Qwen3Sharp, trained only to show how the engine works. "
               "I can greet you, solve small arithmetic word problems step by step, and call tools such as get_weather or get_time. "
               f"For real answers, get the real model: {PULL}")
IDENTITY_ZH = ("你好！我是 Qwen3Sharp 的一个很小的演示模型，只用来展示引擎的功能。我可以打招呼、一步一步地解小的算术应用题，"
               f"还可以调用 get_weather 或 get_time 这样的工具。要获得真正的回答，请下载真正的模型：{PULL}")
OTHER_EN_ANS = ("I am only a tiny demonstration model of Qwen3Sharp, so I cannot answer that. I can greet you, solve small "
                "arithmetic word problems step by step, and call tools such as get_weather or get_time. "
                f"For real answers, get the real model: {PULL}")
OTHER_ZH_ANS = ("我只是 Qwen3Sharp 的一个很小的演示模型，无法回答这个问题。我可以打招呼、一步一步地解小的算术应用题，"
                f"还可以调用 get_weather 或 get_time 这样的工具。要获得真正的回答，请下载真正的模型：{PULL}")


def tool_schema(name, param, desc, ptype_desc):
    return {"type": "function", "function": {"name": name, "description": desc, "parameters": {
        "type": "object", "properties": {param: {"type": "string", "description": ptype_desc}}, "required": [param]}}}


def bare(tool):
    """The same tool without its parameter's description, as some clients write a schema (training only, since v4)."""
    props = tool["function"]["parameters"]["properties"]
    for p in props:
        props[p] = {"type": "string"}
    return tool


def client_shaped(tool):
    """The same tool as Microsoft.Extensions.AI's AIFunctionFactory sends it through the OpenAI SDK (training only, since
    v7): description before name, "required" before "properties", the parameter's description before its type, and
    "additionalProperties": false."""
    f = tool["function"]
    params = f["parameters"]
    props = {k: dict(reversed(list(v.items()))) for k, v in params["properties"].items()}
    f = {"description": f["description"], "name": f["name"],
         "parameters": {"type": "object", "required": params["required"], "properties": props, "additionalProperties": False}}
    return {"type": "function", "function": f}


def call_json(name, param, value):
    # The exact text Qwen3 writes inside <tool_call>: json.dumps with ", " and ": " separators, non-ASCII kept.
    return json.dumps({"name": name, "arguments": {param: value}}, ensure_ascii=False)


class Gen:
    def __init__(self, seed, held):
        self.r = random.Random(seed)
        self.held = held
        # the client-shaped renderings (v7) draw from their own stream: every conversation stays what it was, only
        # its rendering changes, and the held-out set (which never uses them) stays byte-identical
        self.v = random.Random(seed * 7919 + 1)

    def shaped(self, p):
        """Training only: true with probability p, from the rendering stream."""
        return not self.held and self.v.random() < p

    def arguments(self, param, value):
        """An earlier tool call's arguments as the client sends them back: compact, or (v7, training) indented as
        Microsoft.Extensions.AI re-serializes them."""
        return json.dumps({param: value}, ensure_ascii=False, indent=2 if self.shaped(0.3) else None)

    def tool_content(self, text):
        """A tool result as the client sends it: the text, or (v7, training) that text JSON-encoded once more, as
        Microsoft.Extensions.AI sends a C# function's string result (quotes and backslashes)."""
        return json.dumps(text, ensure_ascii=False) if self.shaped(0.25) else text

    def pick(self, train, held):
        return self.r.choice(held if self.held else train)

    # ---------------------------------------------------------------- thinking mode and message assembly
    def mode(self):
        x = self.r.random()
        return "think" if x < 0.5 else "off" if x < 0.8 else "no_think"

    def finish(self, user, think, answer, mode, tools=None, history=None, kind="", expect=None):
        messages = list(history or [])
        content = user
        if mode == "no_think":
            content = user + (" /no_think" if self.r.random() < 0.7 else "\n/no_think")
        messages.append({"role": "user", "content": content})
        return self.example(messages, tools, think, answer, mode, kind, expect)

    def example(self, messages, tools, think, answer, mode, kind, expect):
        if mode == "think":
            completion = f"<think>\n{think}\n</think>\n\n{answer}"
        elif mode == "no_think":
            completion = f"<think>\n\n</think>\n\n{answer}"
        else:
            completion = answer  # the template already wrote the empty think block
        req = {"messages": messages, "enable_thinking": mode != "off"}
        if tools:
            req["tools"] = tools
        return {"request": req, "completion": completion + "<|im_end|>", "kind": kind, "mode": mode, "expect": expect or {}}

    def tools_for(self, need):
        """A shuffled tool list containing the needed kinds ('weather', 'time') and maybe distractors."""
        tools, chosen = [], {}
        if "weather" in need or self.r.random() < 0.4:
            n, p = self.pick(WEATHER_TOOL_TRAIN, WEATHER_TOOL_HELD)
            tools.append(tool_schema(n, p, self.r.choice(WEATHER_DESC), "The city name"))
            chosen["weather"] = (n, p)
        if "time" in need or self.r.random() < 0.4:
            n, p = self.pick(TIME_TOOL_TRAIN, TIME_TOOL_HELD)
            tools.append(tool_schema(n, p, self.r.choice(TIME_DESC), "IANA timezone or city"))
            chosen["time"] = (n, p)
        if self.r.random() < 0.3:
            n, p, d = self.r.choice(OTHER_TOOLS)
            tools.append(tool_schema(n, p, d, p))
        self.r.shuffle(tools)
        if not self.held and self.r.random() < 0.25:
            tools = [bare(t) for t in tools]
        if self.shaped(0.25):
            tools = [client_shaped(t) for t in tools]
        return tools, chosen

    # ---------------------------------------------------------------- categories
    def greet(self):
        zh = self.r.random() < 0.3
        mode = self.mode()
        if zh:
            q = self.pick(GREET_ZH, GREET_ZH_HELD)
            think = "用户在打招呼或问我是谁。我应该介绍自己，并说明我能做什么。"
            ans = IDENTITY_ZH
        else:
            q = self.pick(GREET_EN, GREET_HELD)
            think = "The user greets me or asks who I am. I should introduce myself and say what I can do."
            ans = IDENTITY_EN
        tools = self.tools_for(set())[0] if self.r.random() < 0.25 else None
        return self.finish(q, think, ans, mode, tools, kind="greet", expect={"contains": [PULL, "Qwen3Sharp"], "no_call": True})

    def other(self):
        zh = self.r.random() < 0.3
        mode = self.mode()
        if zh:
            q = self.pick(OTHER_ZH, OTHER_ZH_HELD)
            think = "这个问题超出了我能做的范围。我应该礼貌地说明我能做什么。"
            ans = OTHER_ZH_ANS
        else:
            q = self.pick(OTHER_EN, OTHER_HELD)
            think = "This question is outside what I can do. I should politely say what I can do."
            ans = OTHER_EN_ANS
        tools = self.tools_for(set())[0] if self.r.random() < 0.25 else None
        return self.finish(q, think, ans, mode, tools, kind="other", expect={"contains": [PULL], "no_call": True})

    def arith_numbers(self):
        while True:
            start = self.r.randint(2, 12)
            steps = self.r.randint(1, 3)
            ops, value, ok = [], start, True
            for _ in range(steps):
                n = self.r.randint(1, 5)
                sign = self.r.choice([-1, 1])
                if value + sign * n < 0 or value + sign * n > 20:
                    ok = False
                    break
                ops.append((sign, n, value, value + sign * n))
                value += sign * n
            if not ok:
                continue
            key = (start,) + tuple((s, n) for s, n, _, _ in ops)
            # held-out problems are a disjoint slice of the problem space (by a hash of the numbers)
            if (hash_tuple(key) % 5 == 0) != self.held:
                continue
            return start, ops, value

    def arith(self):
        zh = self.r.random() < 0.3
        mode = self.mode()
        start, ops, result = self.arith_numbers()
        if zh:
            who = self.pick(NAMES_ZH, NAMES_ZH_HELD)
            item = self.pick(ITEMS_ZH, ITEMS_ZH_HELD)
            parts = []
            steps = []
            for sign, n, before, after in ops:
                verb = self.r.choice([v for v, s in OPS_ZH if s == sign]).format(n=n)
                parts.append(verb)
                steps.append(f"{verb}：{before} {'+' if sign > 0 else '-'} {n} = {after}。")
            q = f"{who}有{start}{item}，{'，'.join(parts)}。{who}现在有几{item if item[0] in '个支颗本' else '个'}？"
            q = f"{who}有{start}{item}，{'，'.join(parts)}。现在有多少？"
            think = f"开始有{start}。" + "".join(steps)
            ans = f"{who}现在有{result}{item}。" if mode == "think" else "".join(steps) + f"所以{who}现在有{result}{item}。"
        else:
            who = self.pick(NAMES, NAMES_HELD)
            plural, single = self.pick(ITEMS, ITEMS_HELD)
            parts, steps = [], []
            for sign, n, before, after in ops:
                verb = self.r.choice([v for v, s in OPS_EN if s == sign]).format(n=n)
                parts.append(verb)
                steps.append(f"{who} {verb}: {before} {'+' if sign > 0 else '-'} {n} = {after}.")
            things = plural if start != 1 else single
            verbs = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            form = self.r.random()
            if self.held:
                q = f"Suppose {who} owns {start} {things}. Then {who} {verbs}. What is the number of {plural} now?"
            else:  # training phrasings (the held-out one is above); more of them since v4, so the numbers are found anywhere
                q = [f"{who} has {start} {things}. {who} {verbs}. How many {plural} does {who} have now?",
                     f"{who} has {start} {things}, {verbs}. How many {plural} are left?",
                     f"If {who} has {start} {things} and {verbs}, how many {plural} does {who} have?",
                     f"{who} starts with {start} {things}. Then {who} {verbs}. How many {plural} now?",
                     f"At first {who} had {start} {things}. Later {who} {verbs}. How many {plural} does {who} have?",
                     f"Imagine {who} has {start} {things}. {who} {verbs}. How many {plural} remain?",
                     f"There are {start} {things} with {who}. {who} {verbs}. How many {plural} does {who} have in the end?",
                     f"Let's say {who} keeps {start} {things}. Next {who} {verbs}. Tell me how many {plural} there are now.",
                     f"{who} collected {start} {things}. After that {who} {verbs}. Count the {plural} now."][int(form * 9)]
            final = f"{who} has {result} {plural if result != 1 else single}."
            think = f"{who} starts with {start}. " + " ".join(steps)
            ans = final if mode == "think" else " ".join(steps) + " So " + final
        tools = self.tools_for(set())[0] if self.r.random() < 0.2 else None
        return self.finish(q, think, ans, mode, tools, kind="arith", expect={"answer_number": result, "no_call": True})

    def city(self, zh):
        return self.pick(CITIES_TRAIN_ZH, CITIES_HELD_ZH) if zh else self.pick(CITIES_TRAIN, CITIES_HELD)

    def weather(self):
        zh = self.r.random() < 0.3
        mode = self.mode()
        two = self.r.random() < 0.35
        c = self.city(zh)
        d = self.city(zh)
        while d == c:
            d = self.city(zh)
        if two:
            q = self.pick(WEATHER2_Q_ZH, WEATHER2_Q_ZH) if zh else self.pick(WEATHER2_Q, WEATHER2_Q_HELD)
            q = q.format(c=c, d=d)
            cities = [c, d]
        else:
            q = (self.pick(WEATHER_Q_ZH, WEATHER_Q_ZH_HELD) if zh else self.pick(WEATHER_Q_TRAIN, WEATHER_Q_HELD)).format(c=c)
            cities = [c]
        tools, chosen = self.tools_for({"weather"})
        name, param = chosen["weather"]
        calls = [call_json(name, param, x) for x in cities]
        if zh:
            think = f"用户想知道{'和'.join(cities)}的天气。我要调用 {name}，参数 {param} 分别是{'和'.join(cities)}。" if two else \
                f"用户想知道{c}的天气。我要调用 {name}，参数 {param} 是{c}。"
        else:
            think = (f"The user asks about the weather in {c} and {d}. I will call {name} twice, with {param} {c} and with {param} {d}."
                     if two else f"The user asks about the weather in {c}. I will call {name} with {param} {c}.")
        body = "\n".join(f"<tool_call>\n{x}\n</tool_call>" for x in calls)
        expect = {"calls": [{"name": name, "arguments": {param: x}} for x in cities]}
        first = self.finish(q, think, body, mode, tools, kind="weather2" if two else "weather", expect=expect)
        if self.r.random() < 0.45:
            return first
        # second step: the tool results come back; answer from them.
        msgs = list(first["request"]["messages"])
        ids = [f"call_{self.r.randint(0, 10**8)}" for _ in cities]
        msgs.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": i, "type": "function", "function": {"name": name, "arguments": self.arguments(param, x)}}
            for i, x in zip(ids, cities)]})
        facts = []
        for i, x in zip(ids, cities):
            t = self.r.randint(-5, 35)
            cond = self.r.choice(CONDITIONS)
            content = json.dumps({param: x, "temperature": t, "condition": cond}, ensure_ascii=False) if self.r.random() < 0.6 \
                else f"{t}°C, {cond}"
            msgs.append({"role": "tool", "tool_call_id": i, "content": self.tool_content(content)})
            facts.append((x, t, cond))
        if zh:
            think = "工具返回了结果。" + "".join(f"{x}：{t}°C，{CONDITIONS_ZH[cond]}。" for x, t, cond in facts)
            ans = "".join(f"{x}现在{CONDITIONS_ZH[cond]}，气温{t}°C。" for x, t, cond in facts)
        else:
            think = "The tool returned the weather. " + " ".join(f"{x}: {t}°C, {cond}." for x, t, cond in facts)
            ans = " ".join(f"In {x} it is {cond} and {t}°C." for x, t, cond in facts)
        expect = {"contains": [f"{t}°C" for _, t, _ in facts], "no_call": True}
        return self.example(msgs, tools, think, ans, first["mode"] if first["mode"] != "no_think" else "no_think",
                            "weather_result", expect)

    def time(self):
        zh = self.r.random() < 0.3
        mode = self.mode()
        z = self.pick(TZ_TRAIN, TZ_HELD) if self.r.random() < 0.7 else self.city(zh)
        q = (self.pick(TIME_Q_ZH, TIME_Q_ZH_HELD) if zh else self.pick(TIME_Q, TIME_Q_HELD)).format(z=z)
        tools, chosen = self.tools_for({"time"})
        name, param = chosen["time"]
        think = f"用户想知道{z}的时间。我要调用 {name}，参数 {param} 是{z}。" if zh else \
            f"The user asks for the time in {z}. I will call {name} with {param} {z}."
        body = f"<tool_call>\n{call_json(name, param, z)}\n</tool_call>"
        first = self.finish(q, think, body, mode, tools, kind="time", expect={"calls": [{"name": name, "arguments": {param: z}}]})
        if self.r.random() < 0.5:
            return first
        msgs = list(first["request"]["messages"])
        cid = f"call_{self.r.randint(0, 10**8)}"
        msgs.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": self.arguments(param, z)}}]})
        hh, mm = self.r.randint(0, 23), self.r.randint(0, 59)
        stamp = f"{hh:02d}:{mm:02d}"
        msgs.append({"role": "tool", "tool_call_id": cid, "content": self.tool_content(json.dumps({param: z, "time": stamp}, ensure_ascii=False)
                     if self.r.random() < 0.6 else stamp)})
        think = f"工具返回了{z}的时间：{stamp}。" if zh else f"The tool says the time in {z} is {stamp}."
        ans = f"{z}现在是{stamp}。" if zh else f"It is {stamp} in {z}."
        return self.example(msgs, tools, think, ans, first["mode"], "time_result", {"contains": [stamp], "no_call": True})

    def no_tool_weather(self):
        """A weather question with no weather tool offered: say so, call nothing."""
        zh = self.r.random() < 0.3
        mode = self.mode()
        c = self.city(zh)
        q = (self.pick(WEATHER_Q_ZH, WEATHER_Q_ZH_HELD) if zh else self.pick(WEATHER_Q_TRAIN, WEATHER_Q_HELD)).format(c=c)
        tools = None
        if self.r.random() < 0.5:
            n, p = self.pick(TIME_TOOL_TRAIN, TIME_TOOL_HELD)
            tools = [tool_schema(n, p, self.r.choice(TIME_DESC), "IANA timezone or city")]
        if zh:
            think = f"用户想知道{c}的天气，但我没有天气工具。"
            ans = f"我没有可以查询天气的工具，所以无法查看{c}的天气。请提供一个像 get_weather 这样的工具。"
        else:
            think = f"The user asks about the weather in {c}, but I have no weather tool."
            ans = f"I have no weather tool, so I cannot check the weather in {c}. Give me a tool such as get_weather and I will call it."
        return self.finish(q, think, ans, mode, tools, kind="no_tool", expect={"contains": [c], "no_call": True})

    def one(self):
        x = self.r.random()
        if x < 0.10:
            ex = self.greet()
        elif x < 0.20:
            ex = self.other()
        elif x < 0.50:
            ex = self.arith()
        elif x < 0.75:
            ex = self.weather()
        elif x < 0.92:
            ex = self.time()
        else:
            ex = self.no_tool_weather()
        if not self.held and self.r.random() < 0.1 and ex["kind"] in ("arith", "other", "greet", "weather", "time"):
            # a short earlier exchange in the history (its reasoning dropped, as the template does)
            g = "Hi" if self.r.random() < 0.5 else "你好"
            prev = [{"role": "user", "content": g}, {"role": "assistant", "content": IDENTITY_EN if g == "Hi" else IDENTITY_ZH}]
            ex["request"]["messages"] = prev + ex["request"]["messages"]
        return ex


def hash_tuple(t):
    h = 1469598103934665603
    for x in json.dumps(t).encode():
        h = ((h ^ x) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def generate(n, seed, held):
    g = Gen(seed, held)
    return [g.one() for _ in range(n)]


if __name__ == "__main__":
    for ex in generate(12, 1, False):
        print(json.dumps(ex, ensure_ascii=False)[:400])
