//! The reader against output captured from the real CLIs (Claude Code
//! 2.1.197, Codex 0.171.0) talking to `fixtures/standin/standin.js`.

use std::collections::BTreeMap;

use super::*;

const CLAUDE_OK: &str = include_str!("../../../fixtures/streams/claude-ok.stdout");
const CLAUDE_RETRY: &str = include_str!("../../../fixtures/streams/claude-retry.stdout");
const CLAUDE_401: &str = include_str!("../../../fixtures/streams/claude-401.stdout");
const CLAUDE_429: &str = include_str!("../../../fixtures/streams/claude-429.stdout");
const CLAUDE_500: &str = include_str!("../../../fixtures/streams/claude-500.stdout");
const CLAUDE_529: &str = include_str!("../../../fixtures/streams/claude-529.stdout");
const CLAUDE_ROOT: &str = include_str!("../../../fixtures/streams/claude-root.stderr");
const CODEX_OK: &str = include_str!("../../../fixtures/streams/codex-ok.stdout");
const CODEX_OK_ERR: &str = include_str!("../../../fixtures/streams/codex-ok.stderr");
const CODEX_401: &str = include_str!("../../../fixtures/streams/codex-401.stdout");
const CODEX_429: &str = include_str!("../../../fixtures/streams/codex-429.stdout");
const CODEX_500: &str = include_str!("../../../fixtures/streams/codex-500.stdout");
const CODEX_529: &str = include_str!("../../../fixtures/streams/codex-529.stdout");

fn exit(status: i32) -> Exit {
    Exit {
        status,
        signal: None,
        killed: false,
        elapsed_ms: 1234,
    }
}

/// Feeds stdout then stderr; returns the transcript and the outcome.
fn run(
    format: OutputFormat,
    stdout: &str,
    stderr: &str,
    end: Exit,
    prices: &BTreeMap<String, Price>,
    model: Option<&str>,
) -> (Vec<String>, Outcome) {
    let mut r = StreamReader::new(format);
    let mut shown = Vec::new();
    for line in stdout.lines() {
        shown.extend(r.feed(Source::Stdout, line));
    }
    for line in stderr.lines() {
        shown.extend(r.feed(Source::Stderr, line));
    }
    shown.extend(r.flush());
    (shown, r.finish(&end, prices, model))
}

fn no_prices() -> BTreeMap<String, Price> {
    BTreeMap::new()
}

fn assert_readable(shown: &[String]) {
    for l in shown {
        assert!(!l.contains("{\""), "raw JSON shown: {l}");
        assert!(!l.contains('\u{1b}'), "escape shown: {l:?}");
    }
}

#[test]
fn claude_success_records_the_cli_figures_and_shows_tools_and_the_final_message() {
    let (shown, out) = run(
        OutputFormat::Claude,
        CLAUDE_OK,
        "",
        exit(0),
        &no_prices(),
        None,
    );
    assert_readable(&shown);
    let text = shown.join("\n");
    assert!(text.contains("claude: session started"), "{text}");
    assert!(text.contains("» Bash: mkdir -p 'src'"), "{text}");
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with("  │ ") && l.ends_with("T003: Write src/c.txt")),
        "the commit's output under the call: {text}"
    );
    assert!(
        text.contains("claude: finished: Wrote src/c.txt and committed."),
        "{text}"
    );
    assert_eq!(out.cause, None);
    assert_eq!(out.error, None);
    let u = &out.usage;
    // The stand-in answered 2400+2437+2474 input, 180+191+202 output,
    // 12000+12400+12800 cache reads and one 1500 cache write.
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens
        ),
        (7311, 573, 37200, 1500)
    );
    assert_eq!(u.turns, 3);
    assert_eq!(u.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(u.cost_usd, Some(0.047312999999999994));
    assert_eq!(u.duration_ms, 1263, "the CLI's own duration wins");
}

#[test]
fn claude_retry_that_then_succeeds_is_no_failure() {
    let (shown, out) = run(
        OutputFormat::Claude,
        CLAUDE_RETRY,
        "",
        exit(0),
        &no_prices(),
        None,
    );
    assert_readable(&shown);
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with("claude: API error 529 (overloaded); retry 1 of 1")),
        "{shown:#?}"
    );
    assert_eq!(out.cause, None);
    assert_eq!(out.usage.input_tokens, 7311);
}

#[test]
fn claude_api_failures_are_classified_from_the_result_with_the_cli_line() {
    for (stream, cause, line) in [
        (
            CLAUDE_401,
            Cause::Auth,
            "Invalid API key · Fix external API key",
        ),
        (
            CLAUDE_429,
            Cause::RateLimit,
            "API Error: Request rejected (429)",
        ),
        (
            CLAUDE_500,
            Cause::ApiError,
            "API Error: 500 Internal server error",
        ),
        (CLAUDE_529, Cause::Overloaded, "API Error: 529 Overloaded"),
    ] {
        let (shown, out) = run(
            OutputFormat::Claude,
            stream,
            "",
            exit(1),
            &no_prices(),
            None,
        );
        assert_readable(&shown);
        assert_eq!(out.cause, Some(cause), "{line}");
        let error = out.error.unwrap();
        assert!(error.starts_with(line), "{error}");
        assert!(shown.iter().any(|l| l.starts_with("claude: failed: ")));
        assert_eq!(out.usage.tokens(), 0);
        assert_eq!(out.usage.cost_usd, Some(0.0));
    }
}

#[test]
fn claude_refusing_root_is_refused_with_its_own_line() {
    let (shown, out) = run(
        OutputFormat::Claude,
        "",
        CLAUDE_ROOT,
        exit(1),
        &no_prices(),
        None,
    );
    assert_eq!(out.cause, Some(Cause::Refused));
    assert_eq!(
        out.error.as_deref(),
        Some("--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons")
    );
    assert_eq!(shown.len(), 1);
}

#[test]
fn codex_success_takes_the_last_totals_and_prices_them_from_the_config() {
    let prices = BTreeMap::from([(
        "gpt-5".to_owned(),
        Price {
            input: 1.25,
            output: 10.0,
            cache_read: 0.125,
            cache_write: 0.0,
        },
    )]);
    let (shown, out) = run(
        OutputFormat::Codex,
        CODEX_OK,
        CODEX_OK_ERR,
        exit(0),
        &prices,
        Some("gpt-5.5"),
    );
    assert_readable(&shown);
    let text = shown.join("\n");
    assert!(text.contains("» $ /bin/bash -lc"), "{text}");
    assert!(text.contains("Wrote src/c.txt and committed."), "{text}");
    assert!(
        text.contains("Reading additional input from stdin..."),
        "{text}"
    );
    assert_eq!(out.cause, None);
    let u = &out.usage;
    // 44511 input tokens of which 37200 cached: 7311 uncached.
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (7311, 37200, 573)
    );
    assert_eq!(u.model.as_deref(), Some("gpt-5.5"));
    assert_eq!(u.duration_ms, 1234, "codex reports none: wall clock");
    let expected = (7311.0 * 1.25 + 573.0 * 10.0 + 37200.0 * 0.125) / 1e6;
    assert!((u.cost_usd.unwrap() - expected).abs() < 1e-12, "{u:?}");
    // No price for the model: tokens, no cost.
    let (_, out) = run(
        OutputFormat::Codex,
        CODEX_OK,
        "",
        exit(0),
        &prices,
        Some("o3"),
    );
    assert_eq!(out.usage.cost_usd, None);
}

#[test]
fn codex_failures_are_classified_from_turn_failed() {
    for (stream, cause, line) in [
        (CODEX_401, Cause::Auth, "unexpected status 401 Unauthorized"),
        (
            CODEX_429,
            Cause::RateLimit,
            "exceeded retry limit, last status: 429",
        ),
        (
            CODEX_500,
            Cause::Overloaded,
            "We’re currently experiencing high demand",
        ),
        (CODEX_529, Cause::Overloaded, "unexpected status 529"),
    ] {
        let (shown, out) = run(OutputFormat::Codex, stream, "", exit(1), &no_prices(), None);
        assert_readable(&shown);
        assert_eq!(out.cause, Some(cause), "{line}");
        assert!(out.error.as_deref().unwrap().starts_with(line), "{out:?}");
    }
}

#[test]
fn a_text_agent_is_classified_from_its_last_words() {
    let cases = [
        ("Error: 401 Unauthorized", Cause::Auth),
        (
            "fetch failed: connect ECONNREFUSED 127.0.0.1:9",
            Cause::Network,
        ),
        (
            "litellm.RateLimitError: 429 Too Many Requests",
            Cause::RateLimit,
        ),
        (
            "anthropic.InternalServerError: Error code: 529 - overloaded_error",
            Cause::Overloaded,
        ),
        ("HTTP/1.1 502 Bad Gateway", Cause::ApiError),
        ("error: unexpected argument '--jsn' found", Cause::Refused),
    ];
    for (line, cause) in cases {
        let stderr = format!("working...\n{line}\n");
        let (_, out) = run(OutputFormat::Text, "", &stderr, exit(1), &no_prices(), None);
        assert_eq!(out.cause, Some(cause), "{line}");
        assert_eq!(out.error.as_deref(), Some(line));
    }
    // Nothing recognisable: a crash, with the last line.
    let (_, out) = run(
        OutputFormat::Text,
        "",
        "panic: oh no\n",
        exit(2),
        &no_prices(),
        None,
    );
    assert_eq!(out.cause, Some(Cause::Crash));
    assert_eq!(out.error.as_deref(), Some("panic: oh no"));
    // A signal with nothing printed.
    let end = Exit {
        status: 137,
        signal: Some(9),
        killed: false,
        elapsed_ms: 5,
    };
    let (_, out) = run(OutputFormat::Text, "", "", end, &no_prices(), None);
    assert_eq!(out.cause, Some(Cause::Crash));
    assert_eq!(out.error.as_deref(), Some("ended by signal 9"));
    // The same words in a run that succeeded mean nothing.
    let (_, out) = run(
        OutputFormat::Text,
        "401 tests passed\n",
        "",
        exit(0),
        &no_prices(),
        None,
    );
    assert_eq!(out.cause, None);
    // A run the wrapper killed: whoever killed it says why.
    let killed = Exit {
        killed: true,
        ..end
    };
    let (_, out) = run(OutputFormat::Text, "", "bye\n", killed, &no_prices(), None);
    assert_eq!(out.cause, None);
}

#[test]
fn escapes_and_redraws_never_reach_the_transcript() {
    assert_eq!(
        strip_terminal("\u{1b}[1;31mred\u{1b}[0m plain"),
        "red plain"
    );
    assert_eq!(
        strip_terminal("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{1b}\\ done"),
        "link done"
    );
    assert_eq!(strip_terminal("10%\r50%\r100%"), "100%");
    assert_eq!(strip_terminal("a\tb\u{7}\u{8}c\r\n"), "a\tc\n");
    assert_eq!(strip_terminal("\u{9b}2Jclear"), "2Jclear");
    assert_eq!(strip_terminal("\u{1b}(Bok"), "ok");
    // A hostile agent's text inside an event is cleaned as well.
    let mut r = StreamReader::new(OutputFormat::Claude);
    let event = serde_json::json!({
        "type": "assistant",
        "message": {"id": "m1", "model": "x", "content": [
            {"type": "text", "text": "\u{1b}]0;pwned\u{7}\u{1b}[2Jhello"}
        ]}
    });
    assert_eq!(r.feed(Source::Stdout, &event.to_string()), vec!["hello"]);
    // JSON that is no event is never shown raw.
    let shown = r.feed(Source::Stdout, "{\"half\": ");
    assert_eq!(shown.len(), 1);
    assert!(!shown[0].contains('{'), "{shown:?}");
}

#[test]
fn a_claude_run_cut_short_still_counts_the_messages_it_saw() {
    // The first two messages of the success stream, then the agent is killed.
    let lines: Vec<&str> = CLAUDE_OK
        .lines()
        .take_while(|l| !l.contains("\"type\":\"result\""))
        .collect();
    let (_, out) = run(
        OutputFormat::Claude,
        &lines.join("\n"),
        "",
        Exit {
            status: 143,
            signal: Some(15),
            killed: true,
            elapsed_ms: 900,
        },
        &no_prices(),
        None,
    );
    assert_eq!(out.cause, None);
    assert_eq!(out.usage.input_tokens, 7311);
    assert_eq!(out.usage.cache_read_tokens, 37200);
    assert_eq!(out.usage.duration_ms, 900);
}

#[test]
fn gemini_and_opencode_events_are_read() {
    let gemini = r#"{"type":"init","timestamp":"2025-10-10T12:00:00.000Z","session_id":"s1","model":"gemini-2.5-pro"}
{"type":"message","role":"user","content":"do it"}
{"type":"message","role":"assistant","content":"Writing the ","delta":true}
{"type":"message","role":"assistant","content":"file.\n","delta":true}
{"type":"tool_use","tool_name":"write_file","tool_id":"t1","parameters":{"file_path":"src/a.txt","content":"x"}}
{"type":"tool_result","tool_id":"t1","status":"success","output":"ok"}
{"type":"message","role":"assistant","content":"All done","delta":true}
{"type":"result","status":"success","stats":{"total_tokens":1500,"input_tokens":1200,"output_tokens":300,"cached":200,"input":1000,"duration_ms":4200,"tool_calls":1}}"#;
    let (shown, out) = run(
        OutputFormat::Gemini,
        gemini,
        "",
        exit(0),
        &no_prices(),
        None,
    );
    assert_readable(&shown);
    assert!(
        shown.contains(&"Writing the file.".to_owned()),
        "{shown:#?}"
    );
    assert!(
        shown.contains(&"» write_file src/a.txt".to_owned()),
        "{shown:#?}"
    );
    assert!(shown.contains(&"All done".to_owned()), "{shown:#?}");
    let u = &out.usage;
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (1000, 200, 300)
    );
    assert_eq!(u.model.as_deref(), Some("gemini-2.5-pro"));
    let failed = r#"{"type":"result","status":"error","error":{"type":"FatalAuthenticationError","message":"API key not valid. Please pass a valid API key. (401)"},"stats":{}}"#;
    let (_, out) = run(
        OutputFormat::Gemini,
        failed,
        "",
        exit(1),
        &no_prices(),
        None,
    );
    assert_eq!(out.cause, Some(Cause::Auth));

    let opencode = r#"{"type":"step_start","timestamp":1,"sessionID":"ses_1","part":{"type":"step-start"}}
{"type":"tool_use","timestamp":2,"sessionID":"ses_1","part":{"type":"tool","tool":"bash","state":{"status":"completed","input":{"command":"git commit -qm x"},"output":"","metadata":{"exit":0}}}}
{"type":"step_finish","timestamp":3,"sessionID":"ses_1","part":{"type":"step-finish","reason":"tool-calls","cost":0.001,"tokens":{"input":1000,"output":100,"reasoning":10,"cache":{"read":500,"write":50}}}}
{"type":"text","timestamp":4,"sessionID":"ses_1","part":{"type":"text","text":"Committed."}}
{"type":"step_finish","timestamp":5,"sessionID":"ses_1","part":{"type":"step-finish","reason":"stop","cost":0.002,"tokens":{"input":1100,"output":20,"reasoning":0,"cache":{"read":600,"write":0}}}}"#;
    let (shown, out) = run(
        OutputFormat::Opencode,
        opencode,
        "",
        exit(0),
        &no_prices(),
        None,
    );
    assert_readable(&shown);
    assert!(
        shown.contains(&"» bash: git commit -qm x".to_owned()),
        "{shown:#?}"
    );
    let u = &out.usage;
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.turns
        ),
        (2100, 130, 1100, 50, 2)
    );
    assert!((u.cost_usd.unwrap() - 0.003).abs() < 1e-12);
    let err = r#"{"type":"error","timestamp":1,"sessionID":"ses_1","error":{"name":"ProviderAuthError","data":{"providerID":"anthropic","message":"No API key"}}}"#;
    let (_, out) = run(OutputFormat::Opencode, err, "", exit(1), &no_prices(), None);
    assert_eq!(out.cause, Some(Cause::Auth));
    assert_eq!(out.error.as_deref(), Some("No API key"));
}

#[test]
fn prices_match_a_model_by_its_longest_prefix_and_odd_costs_are_dropped() {
    let p = |input| Price {
        input,
        output: 0.0,
        cache_read: 0.0,
        cache_write: 0.0,
    };
    let prices = BTreeMap::from([
        ("claude".to_owned(), p(1.0)),
        ("claude-sonnet-4-5".to_owned(), p(3.0)),
    ]);
    assert_eq!(
        price_for(&prices, "claude-sonnet-4-5-20250929")
            .unwrap()
            .input,
        3.0
    );
    assert_eq!(price_for(&prices, "claude-haiku").unwrap().input, 1.0);
    assert!(price_for(&prices, "gpt-5").is_none());
    let hostile = r#"{"type":"result","subtype":"success","is_error":false,"result":"x","total_cost_usd":-5,"usage":{"input_tokens":10}}"#;
    let (_, out) = run(
        OutputFormat::Claude,
        hostile,
        "",
        exit(0),
        &no_prices(),
        None,
    );
    assert_eq!(out.usage.cost_usd, None);
    assert_eq!(
        describe_usage(&Usage {
            input_tokens: 45584,
            cost_usd: Some(0.0473),
            turns: 3,
            duration_ms: 1263,
            ..Usage::default()
        }),
        "45,584 tokens, $0.0473, 3 turns, 1.3s"
    );
}

#[test]
fn the_final_message_is_kept_for_a_reviewers_verdict() {
    let feed = |format, stdout: &str| {
        let mut r = StreamReader::new(format);
        for line in stdout.lines() {
            r.feed(Source::Stdout, line);
        }
        // stderr is never the final message.
        r.feed(Source::Stderr, "warning: noise");
        r.final_message().to_owned()
    };
    assert_eq!(
        feed(OutputFormat::Claude, CLAUDE_OK),
        "Wrote src/c.txt and committed."
    );
    assert_eq!(
        feed(OutputFormat::Codex, CODEX_OK),
        "Wrote src/c.txt and committed."
    );
    let text = feed(
        OutputFormat::Text,
        "thinking\n```verdict\nverdict: APPROVE\n```\n",
    );
    assert_eq!(text, "thinking\n```verdict\nverdict: APPROVE\n```\n");
    assert_eq!(
        crate::gates::review::from_message(&text).as_deref(),
        Some("verdict: APPROVE\n")
    );
    // A plain-text agent's output is kept by its end, bounded.
    let long = "x".repeat(1000);
    let many: String = (0..100).map(|_| format!("{long}\n")).collect();
    let kept = feed(OutputFormat::Text, &format!("{many}last\n"));
    assert!(
        kept.len() <= 64 * 1024 && kept.ends_with("last\n"),
        "{}",
        kept.len()
    );
}
