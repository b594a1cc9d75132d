namespace Tollgate.Routing.Classification;

/// <summary>
/// Groups of cue phrases that say what a request asks for. A group is a feature the model weighs
/// per place (system prompt, the last user turn's instruction zone or body, earlier turns), so one
/// phrase list serves every task: "translate" in a system prompt sets a default, in the last user
/// turn it decides, inside a pasted article it means little.
/// </summary>
internal enum CueGroup
{
    TranslateVerb,
    TargetLanguage,
    LanguageName,
    SummarizeVerb,
    LengthFormat,
    DocumentNoun,
    ClassifyVerb,
    LabelSet,
    OutputOnly,
    ExtractVerb,
    StructuredFormat,
    EntityNoun,
    CodeVerb,
    CodeLanguage,
    CodeKeyword,
    ErrorTrace,
    ReasoningVerb,
    QuantityWord,
    PlanningTradeoff,
    StepByStep,
    FactualQuestion,
    Social,
    CreativeWriting,
    Advice,
    Explain,
}

/// <summary>
/// The cue phrases, in English, French, German, Spanish, Vietnamese, Chinese and Japanese. Phrases
/// go through the same normaliser as request text (lowercase, a trailing plural "s" dropped, words
/// cut to six letters, digits as one number token, each CJK character a token), so "summarise",
/// "summary" and "summaries" are one entry, and phrases match up to four tokens long.
/// </summary>
internal static class CueLexicon
{
    public const int GroupCount = 25;

    /// <summary>Groups that name a task; a last user turn without any leaves the decision to the system prompt.</summary>
    public const ulong TaskGroups =
        (1UL << (int)CueGroup.TranslateVerb) | (1UL << (int)CueGroup.TargetLanguage) | (1UL << (int)CueGroup.SummarizeVerb)
        | (1UL << (int)CueGroup.ClassifyVerb) | (1UL << (int)CueGroup.ExtractVerb) | (1UL << (int)CueGroup.CodeVerb)
        | (1UL << (int)CueGroup.ReasoningVerb) | (1UL << (int)CueGroup.PlanningTradeoff) | (1UL << (int)CueGroup.StepByStep)
        | (1UL << (int)CueGroup.CreativeWriting);

    private static readonly string[] Languages =
    [
        "english", "german", "french", "spanish", "italian", "portuguese", "japanese", "chinese", "mandarin", "cantonese",
        "korean", "vietnamese", "russian", "arabic", "dutch", "polish", "turkish", "hindi", "swedish", "greek", "hebrew",
        "thai", "indonesian", "ukrainian", "czech", "danish", "norwegian", "finnish", "romanian", "hungarian",
    ];

    /// <summary>The phrase lists, one '|'-separated string per group.</summary>
    internal static IEnumerable<(CueGroup Group, string Phrases)> Entries()
    {
        yield return (CueGroup.TranslateVerb,
            "translate|translation|translator|translating|how do you say|how would you say|how would i say|how do i say|how would i write|localize|localise|localization|"
            + "traduire|traduis|traduit|traduction|traduisez|traducteur|comment dit-on|comment dire|"
            + "übersetze|übersetzen|übersetzung|übersetzt|übersetzer|wie sagt man|"
            + "traduce|traducir|traducción|tradúceme|traduzca|traductor|cómo se dice|"
            + "dịch sang|dịch giúp|bản dịch|dịch đoạn|dịch câu|dịch bài|dịch thuật|dịch nội dung|dịch cho|hãy dịch|dịch đoạn văn|dich sang|"
            + "翻译|翻譯|翻成|译成|譯成|译为|翻为|怎么说|翻訳|訳して|訳す|英訳|和訳|번역");
        var targets = new List<string>();
        foreach (var language in Languages)
        {
            targets.Add("to " + language);
            targets.Add("into " + language);
        }

        yield return (CueGroup.TargetLanguage, string.Join('|', targets)
            + "|en anglais|en allemand|en espagnol|en français|en italien|en chinois|en japonais|en portugais|vers l'anglais|vers le français|"
            + "ins englische|ins deutsche|ins französische|ins spanische|ins italienische|ins japanische|ins chinesische|auf englisch|auf deutsch|auf französisch|auf spanisch|"
            + "al inglés|al español|al francés|al alemán|al chino|al japonés|al portugués|al italiano|en inglés|"
            + "sang tiếng|sang tieng|"
            + "成英文|成中文|成日语|成日文|成英语|成法语|成德语|为英文|为中文|成韩语|"
            + "英語に|日本語に|中国語に|語に訳|語に翻|語訳");
        yield return (CueGroup.LanguageName, string.Join('|', Languages)
            + "|anglais|allemand|espagnol|français|italien|chinois|japonais|englisch|deutsch|französisch|spanisch|inglés|español|alemán|francés|"
            + "tiếng anh|tiếng việt|tiếng pháp|tiếng đức|tiếng nhật|tiếng trung|tiếng hàn|tieng anh|"
            + "英文|英语|中文|日语|日文|法语|德语|韩语|英語|日本語|中国語|ドイツ語|韓国語");
        yield return (CueGroup.SummarizeVerb,
            "summarize|summary|summarizing|summarization|tl dr|tldr|recap|condense|key points|main points|key takeaways|takeaways|gist|in a nutshell|boil down|"
            + "shorten|brief overview|synopsis|sum up|highlights|executive summary|main ideas|"
            + "résume|résumer|résumez|fais un résumé|un résumé|synthèse|synthétise|points clés|idées principales|"
            + "zusammenfassen|zusammenfassung|fasse|fass|kurzfassung|kernaussagen|das wichtigste|"
            + "resumir|resúmeme|un resumen|haz un resumen|resumen corto|puntos clave|síntesis|sintetiza|ideas principales|"
            + "tóm tắt|tóm lược|ý chính|tom tat|tóm lại|"
            + "总结|總結|概括|摘要|归纳|概述|要点|要約|まとめ|要点|概要|要旨");
        yield return (CueGroup.LengthFormat,
            "one sentence|2 sentences|sentences|one paragraph|a paragraph|bullet|bullet points|one-line|one line|two lines|2 lines|a few words|words or less|"
            + "100 words|at most|no more than|briefly|concise|shorter|short|brief|"
            + "une phrase|phrases|en bref|courte|sätzen|stichpunkten|kurz|knapp|frases|breve|corto|ngắn gọn|câu|"
            + "句话|简短|简要|三句|一句|行で|簡潔|短く");
        yield return (CueGroup.DocumentNoun,
            "article|email|e-mail|transcript|meeting|notes|thread|report|document|paper|text|passage|conversation|chat log|post|blog|letter|memo|chapter|"
            + "contract|lease|minutes|slack|newsletter|press release|abstract|speech|excerpt|paragraph|"
            + "texte|courriel|réunion|compte rendu|rapport|artikel|protokoll|bericht|dokument|artículo|texto|correo|reunión|documento|informe|acta|"
            + "bài báo|đoạn văn|văn bản|bài viết|cuộc họp|文章|邮件|会议|文本|报告|段落|新闻|记事|記事|メール|会議|議事録|報告書|文書");
        yield return (CueGroup.ClassifyVerb,
            "classify|classification|categorize|categorise|categorization|category|label|labeling|labelling|tag|triage|assign|sentiment|intent|"
            + "which department|which queue|which category|which team|moderation|toxicity|toxic|spam or|is this spam|determine whether|decide whether|"
            + "yes or no|true or false|one of the following|one of|priority|severity|urgency|detect the language|which language|identify the language|"
            + "classe|classer|classifie|classifier|catégorie|catégoriser|étiquette|intention|priorité|"
            + "kategorie|klassifiziere|klassifizieren|ordne|einordnen|zuordnen|stimmung|kategorisiere|priorität|dringlichkeit|"
            + "clasifica|clasificar|categoría|categoriza|etiqueta|sentimiento|intención|prioridad|"
            + "phân loại|nhãn|cảm xúc|thuộc loại|danh mục|"
            + "分类|類別|类别|情感|标签|归类|情绪|分類|カテゴリ|ラベル|感情|判定");
        yield return (CueGroup.LabelSet,
            "positive|negative|neutral|spam|not spam|ham|urgent|billing|hot|warm|cold|low|medium|high|p0|p1|p2|p3|safe|unsafe|relevant|irrelevant|"
            + "joy|anger|sadness|fear|other|"
            + "positif|négatif|neutre|positiv|negativ|positivo|negativo|neutro|tích cực|tiêu cực|trung tính|trung lập|"
            + "正面|负面|中性|积极|消极|ポジティブ|ネガティブ|中立|肯定的|否定的");
        yield return (CueGroup.OutputOnly,
            "only the label|label only|one word|single word|nothing else|no explanation|without explanation|reply with|respond with|answer with|output only|"
            + "return only|just the|only output|only return|name only|only with|"
            + "uniquement|seulement|nur mit|nur die|nur den|solo|únicamente|chỉ trả lời|chỉ|只输出|只回答|仅输出|只需|のみ|だけ");
        yield return (CueGroup.ExtractVerb,
            "extract|extraction|pull out|parse|find all|list all|list every|get all|identify all|pick out|entities|named entities|fill in|get the|"
            + "extrais|extraire|extrayez|relève|liste les|liste tous|extrahiere|extrahieren|liste alle|alle namen|"
            + "extrae|extraer|extraiga|saca|lista todos|enumera|"
            + "trích xuất|trích|lấy ra|liệt kê|提取|抽取|提炼|找出|列出|抽出|取り出|抜き出|列挙");
        yield return (CueGroup.StructuredFormat,
            "json|json object|schema|field|key|key value|csv|table|yaml|structured|array|null|missing field|columns|"
            + "champs|format json|tableau|felder|tabelle|campos|tabla|trường|dạng json|字段|格式|表格|項目|形式");
        yield return (CueGroup.EntityNoun,
            "name|date|address|phone|phone number|email address|amount|total|price|invoice|receipt|vendor|company|person|organization|location|"
            + "sku|order number|quantity|dosage|medication|attendee|skill|salary|ip address|"
            + "nom|adresse|montant|facture|téléphone|namen|datum|betrag|rechnung|telefonnummer|telefonnummern|firma|firmen|"
            + "nombre|fecha|dirección|importe|factura|teléfono|"
            + "tên|số điện thoại|địa chỉ|ngày|hóa đơn|姓名|电话|邮箱|地址|日期|金额|发票|氏名|名前|電話|住所|日付|金額|請求書");
        yield return (CueGroup.CodeVerb,
            "code|coding|function|method|implement|implementation|refactor|debug|debugging|bug|fix|compile|compiler|script|unit test|test|regex|regexp|"
            + "query|endpoint|api|library|package|dependency|deploy|dockerfile|docker|kubernetes|git|pull request|npm|pip|syntax|variable|loop|array|"
            + "write a function|write a script|write a program|program|programming|time complexity|big o|null pointer|segfault|runtime|crash|lint|linter|"
            + "snippet|this code|my code|the code|component|hook|frontend|backend|database|migration|class|compiles|"
            + "fonction|requête|méthode|ce code|funktion|methode|skript|programm|función|código|componente|método|programa|consulta|"
            + "hàm|mã nguồn|đoạn code|đoạn mã|lập trình|代码|函数|程序|编程|脚本|接口|报错|编译|コード|関数|プログラム|実装|バグ|スクリプト|コンパイル");
        yield return (CueGroup.CodeLanguage,
            "python|typescript|javascript|js|ts|java|rust|golang|go code|in go|c#|csharp|c++|cpp|sql|postgres|postgresql|mysql|sqlite|bash|shell|zsh|"
            + "powershell|react|node|nodejs|html|css|kotlin|swift|php|ruby|rails|dotnet|linq|pandas|numpy|django|flask|fastapi|spring|terraform|"
            + "graphql|vue|angular|nextjs|tailwind|jquery|haskell|scala|elixir|lua|perl|dart|flutter|matlab|vba|asp.net|.net|jsx|tsx");
        yield return (CueGroup.CodeKeyword,
            "def|const|fn|func|println|printf|console|async|await|struct|impl|elif|lambda|namespace|typedef|int|bool|nil|null|undefined|foreach|"
            + "mut|self|usize|void|var|std|sudo|echo|chmod|grep|kubectl|useeffect|usestate|select|from|where|join|return|import|public|private|static|"
            + "println|true|false|none|let|interface|string|elif|endif|fmt|err|args|argv|len|str|dict|list|vec|i32|u8");
        yield return (CueGroup.ErrorTrace,
            "traceback|exception|most recent call|errno|stacktrace|stack trace|panic|segmentation fault|keyerror|typeerror|valueerror|indexerror|"
            + "attributeerror|nullreferenceexception|undefined is not|cannot read property|cannot borrow|does not exist on type|unexpected token|"
            + "syntaxerror|core dumped|exit code|status code|fatal|error|warning|failed|deadlock|"
            + "erreur|fehler|lỗi|错误|报错|异常|エラー|例外");
        yield return (CueGroup.ReasoningVerb,
            "prove|proof|show that|derive|derivation|calculate|calculation|compute|how many|how much|how long|how long would|probability|odds|"
            + "expected value|likelihood|solve|equation|solve for|puzzle|riddle|logic|deduce|which is faster|which is cheaper|cheapest|fastest|"
            + "optimal|optimize|optimise|minimize|maximize|minimum|maximum|estimate|work out|figure out|what is the best|"
            + "prouve|prouver|démontre|démontrer|calcule|calculer|combien|probabilité|résous|équation|"
            + "beweise|beweisen|berechne|berechnen|rechne|wie viele|wie viel|wahrscheinlichkeit|löse|gleichung|"
            + "demuestra|demostrar|calcula|calcular|cuántos|cuántas|cuánto|probabilidad|resuelve|ecuación|óptimo|"
            + "chứng minh|tính|bao nhiêu|xác suất|giải|phương trình|suy luận|"
            + "证明|推理|计算|多少|概率|几个|几小时|求解|方程|推导|最优|最少|最多|証明|計算|確率|何時間|何個|いくら|解いて|方程式|推論|最適");
        yield return (CueGroup.QuantityWord,
            "per|each|average|percent|percentage|rate|interest|speed|distance|hours|minutes|days|times|twice|half|cost|km|mph|ratio|sum|"
            + "dollar|budget|margin|revenue|growth|monthly|per month|per year|per hour|"
            + "heures|coûte|prix|chaque|moyenne|pourcentage|stunden|minuten|kostet|preis|jeweils|durchschnitt|prozent|zinsen|"
            + "horas|minutos|cuesta|precio|cada|promedio|porcentaje|interés|giờ|phút|giá|mỗi|trung bình|phần trăm|"
            + "小时|分钟|平均|百分之|速度|价格|公里|时间|平均|割引|価格|円");
        yield return (CueGroup.PlanningTradeoff,
            "trade-off|tradeoff|pros and cons|should we|should i|which one|which option|better option|is it worth|worth it|decide|deciding|decision|"
            + "compare|comparison|versus|vs|or should|plan|planning|schedule|scheduling|constraint|strategy|evaluate|weigh|risk|roi|break even|"
            + "long term|scenario|given that|assume|assuming|assumption|suppose|what if|which is better|"
            + "vaut-il mieux|avantages et inconvénients|faut-il|devrais-je|comparer|planifier|stratégie|contraintes|"
            + "vor- und nachteile|abwägen|wäge|lieber|soll ich|sollten wir|vergleich|strategie|planen|"
            + "ventajas y desventajas|debería|conviene|qué es mejor|comparar|estrategia|planificar|vale la pena|"
            + "nên chọn|so sánh|ưu nhược điểm|ưu và nhược|kế hoạch|chiến lược|có nên|"
            + "权衡|利弊|应该选|哪个更|对比|比较|规划|策略|优缺点|值得|どちら|メリット|デメリット|計画|戦略|トレードオフ|べきか");
        yield return (CueGroup.StepByStep,
            "step by step|step-by-step|show your work|show the calculation|show your reasoning|explain your reasoning|show the steps|"
            + "lay out your assumptions|walk me through|walk through|reasoning|think step|think carefully|think through|your reasoning|"
            + "étape par étape|le raisonnement|schritt für schritt|rechenweg|begründe|paso a paso|razona|razonamiento|tu razonamiento|"
            + "từng bước|giải thích từng bước|一步一步|逐步|推理过程|步骤|过程|ステップ|段階的|順を追って|過程");
        yield return (CueGroup.FactualQuestion,
            "what is|what are|what s|who is|who was|who|when did|when was|where is|where|why is|why are|why do|why does|how does|how do|how is|"
            + "how are|how can|how do i|what does|difference between|is there|can i|tell me about|meaning of|history of|"
            + "qu est-ce|quelle est|quel est|pourquoi|comment|qui|was ist|wie funktioniert|warum|wer|wie kann|welche|"
            + "qué es|cómo|por qué|quién|cuál es|dónde|là gì|tại sao|như thế nào|làm thế nào|ở đâu|"
            + "什么|为什么|怎么|如何|哪里|是谁|哪些|とは|なぜ|どうして|どうやって|どこ|ありますか");
        yield return (CueGroup.Social,
            "hi|hello|hey|thanks|thank you|good morning|how are you|i feel|feeling|lonely|bored|lol|"
            + "bonjour|salut|merci|hallo|danke|hola|gracias|xin chào|chào|cảm ơn|你好|谢谢|こんにちは|ありがとう");
        yield return (CueGroup.CreativeWriting,
            "poem|haiku|story|short story|joke|limerick|lyrics|song|slogan|tagline|essay|toast|caption|cover letter|blog post|linkedin|"
            + "write an email|draft an email|write a letter|email to|draft|rewrite|rephrase|brainstorm|come up with|names for|name for|more formal|"
            + "poème|histoire|écris|rédige|blague|gedicht|geschichte|schreib|witz|formuliere|poema|cuento|escribe|redacta|chiste|"
            + "bài thơ|câu chuyện|viết thư|写一首|诗|故事|写一封|文案|笑话|詩|物語|書いて|作って");
        yield return (CueGroup.Advice,
            "advice|tip|recommend|recommendation|suggest|suggestion|what should i|any ideas|ideas|help me|good book|favorite|"
            + "conseil|recommandes|tu me conseilles|idées|astuces|tipps|empfehlen|empfiehlst|ratschläge|ideen|"
            + "consejos|recomiendas|recomendar|sugerencias|lời khuyên|gợi ý|mẹo|推荐|建议|技巧|おすすめ|アドバイス|コツ");
        yield return (CueGroup.Explain,
            "explain|explain why|explain how|explanation|what happens|describe|tell me|help me understand|eli5|in simple terms|"
            + "explique|expliquer|erkläre|erklären|erklär|explica|explicar|explícame|giải thích|解释|说明|讲解|説明|解説|教えて");
    }
}
