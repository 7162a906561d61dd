//! Templates for forward targets (minijinja), and what they see.
//!
//! An event template sees the event's fields (`status`, `labels`, `annotations`,
//! `startsAt`, `endsAt`, `generatorURL`, `fingerprint`), the shortcuts `alertname`,
//! `severity` (`severity` or else TiDB's `level` label), `summary` and `description`,
//! `id` (the dedupe key) and `event_json` (the event as one line of JSON). Filters on top
//! of minijinja's built-ins:
//! - `tojson`: a value as JSON, e.g. a whole body `{{ labels | tojson }}`;
//! - `kv`: a map as `name=value, …`, e.g. `{{ labels | kv }}`;
//! - `strftime(format, tz="UTC")`: a timestamp in another form, e.g.
//!   `{{ startsAt | strftime("%Y-%m-%d %H:%M:%S", "local") }}`.
//!
//! Output is never escaped: values reach argv, headers and bodies as they are. Undefined
//! values (a label an alert lacks) render empty.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, context};

use super::alert::{Alert, Event};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template `{name}` does not compile: {source}")]
    Compile {
        name: String,
        source: minijinja::Error,
    },
    #[error("template `{name}` failed: {source}")]
    Render {
        name: String,
        source: minijinja::Error,
    },
}

/// Every template of the forward targets, compiled once at start.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_filter("kv", kv);
        env.add_filter("strftime", strftime);
        Self { env }
    }

    /// Compiles `source` under `name` (e.g. `forward.pager.command[1]`).
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        self.env
            .add_template_owned(name.to_owned(), source.to_owned())
            .map_err(|source| TemplateError::Compile {
                name: name.to_owned(),
                source,
            })
    }

    pub fn render(&self, name: &str, context: &Value) -> Result<String, TemplateError> {
        let render_error = |source| TemplateError::Render {
            name: name.to_owned(),
            source,
        };
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(render_error)
    }
}

/// Checks that `source` compiles, for config validation: `Err` is one line saying what
/// is wrong and on which line of the template.
pub fn check(source: &str) -> Result<(), String> {
    Environment::new()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| {
            let what = e
                .detail()
                .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
            match e.line() {
                Some(line) if source.contains('\n') => format!("{what} (line {line})"),
                _ => what,
            }
        })
}

/// What a forward template sees for one event.
pub fn event_context(event: &Event) -> Value {
    context! {
        alertname => event.alertname(),
        severity => event.severity(),
        summary => event.annotations.get("summary").map_or("", String::as_str),
        description => event.annotations.get("description").map_or("", String::as_str),
        id => event.id(),
        event_json => serde_json::to_string(event).unwrap_or_default(),
        // Empty rather than `none` while firing, so `{{ endsAt }}` reads well in text.
        endsAt => event.ends_at.map(|t| t.to_string()).unwrap_or_default(),
        ..Value::from_serialize(event)
    }
}

/// What `alerts --format` sees for one merged alert: the event fields of a `firing`
/// event plus `state`, `silencedBy`, `inhibitedBy`, `receivers`, `updatedAt` and
/// `servers`.
pub fn alert_context(alert: &Alert) -> Value {
    let event = Event::firing(alert, alert.starts_at);
    context! {
        state => alert.state,
        silencedBy => &alert.silenced_by,
        inhibitedBy => &alert.inhibited_by,
        receivers => &alert.receivers,
        updatedAt => alert.updated_at,
        endsAt => alert.ends_at,
        servers => &alert.servers,
        ..event_context(&event)
    }
}

fn kv(value: Value) -> Result<String, Error> {
    let mut pairs = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        pairs.push(format!("{key}={item}"));
    }
    Ok(pairs.join(", "))
}

fn strftime(value: &str, format: &str, tz: Option<&str>) -> Result<String, Error> {
    let invalid = |what: String| Error::new(ErrorKind::InvalidOperation, what);
    let ts: jiff::Timestamp = value
        .parse()
        .map_err(|e| invalid(format!("`{value}` is not a timestamp: {e}")))?;
    let formatted = match tz.unwrap_or("UTC") {
        "UTC" => jiff::fmt::strtime::format(format, ts),
        "local" => jiff::fmt::strtime::format(format, &ts.to_zoned(jiff::tz::TimeZone::system())),
        name => {
            let zone = jiff::tz::TimeZone::get(name)
                .map_err(|e| invalid(format!("unknown time zone `{name}`: {e}")))?;
            jiff::fmt::strtime::format(format, &ts.to_zoned(zone))
        }
    };
    formatted.map_err(|e| invalid(format!("bad strftime format `{format}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::merge::tests::{alert, at};
    use super::*;

    fn render(source: &str, event: &Event) -> Result<String, TemplateError> {
        let mut templates = Templates::new();
        templates.add("t", source)?;
        templates.render("t", &event_context(event))
    }

    fn event() -> Event {
        let mut a = alert("aa", 0);
        a.labels.insert("level".into(), "critical".into());
        a.labels.insert("instance".into(), "10.0.1.1:20180".into());
        a.annotations
            .insert("summary".into(), "TiKV down <b>&".into());
        Event::firing(&a, a.starts_at)
    }

    #[test]
    fn templates_see_the_event_fields_and_shortcuts() {
        let out = render(
            "{{ status }} {{ alertname }} {{ severity }} {{ labels.instance }} {{ summary }} {{ startsAt }} {{ fingerprint }}",
            &event(),
        )
        .unwrap();
        assert_eq!(
            out,
            format!(
                "firing Aaa critical 10.0.1.1:20180 TiKV down <b>& {} aa",
                at(0)
            )
        );
    }

    #[test]
    fn missing_labels_render_empty_and_nothing_is_escaped() {
        assert_eq!(render("[{{ labels.nope }}]", &event()).unwrap(), "[]");
        assert_eq!(
            render("[{{ endsAt }}]", &event()).unwrap(),
            "[]",
            "firing has no endsAt"
        );
        let a = alert("aa", 0);
        let resolved = Event::resolved(&a, a.starts_at, at(60));
        assert_eq!(
            render("{{ endsAt }}", &resolved).unwrap(),
            at(60).to_string()
        );
    }

    #[test]
    fn helper_filters() {
        let e = event();
        assert_eq!(
            render("{{ labels | kv }}", &e).unwrap(),
            "alertname=Aaa, instance=10.0.1.1:20180, level=critical"
        );
        assert_eq!(
            render("{{ startsAt | strftime('%Y-%m-%d %H:%M') }}", &e).unwrap(),
            "2027-01-15 08:00"
        );
        assert_eq!(
            render("{{ startsAt | strftime('%H:%M %Z', 'Asia/Shanghai') }}", &e).unwrap(),
            "16:00 CST"
        );
        let json = render("{{ labels | tojson }}", &e).unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["instance"], "10.0.1.1:20180");
        let whole: Event = serde_json::from_str(&render("{{ event_json }}", &e).unwrap()).unwrap();
        assert_eq!(whole, e);
        // A value placed in a URL: every reserved character escaped but `/`, as Jinja's.
        assert_eq!(
            render("{{ 'a b&c=d/é?#' | urlencode }}", &e).unwrap(),
            "a%20b%26c%3Dd/%C3%A9%3F%23"
        );
    }

    #[test]
    fn errors_name_the_template() {
        let err = render("{{ 'yesterday' | strftime('%Y') }}", &event()).unwrap_err();
        assert!(err.to_string().contains("`t`"), "{err}");
        let err = render("{% if %}", &event()).unwrap_err();
        assert!(matches!(err, TemplateError::Compile { .. }), "{err}");
        assert_eq!(
            check("{{ a }").unwrap_err(),
            "syntax error: unexpected `}`, expected end of variable block"
        );
        assert!(check("ok\n{% if %}").unwrap_err().ends_with("(line 2)"));
        assert!(check("{{ labels.a }}").is_ok());
    }
}
