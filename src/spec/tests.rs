use super::*;

fn corpus(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/tasks-md/");
    std::fs::read_to_string(format!("{dir}{name}")).unwrap()
}

#[test]
fn dump() {
    let name = std::env::var("DUMP").unwrap_or_default();
    if name.is_empty() {
        return;
    }
    let spec = parse(&name, &corpus(&name)).unwrap();
    let p = plan(&spec).unwrap();
    let mut out = Vec::new();
    render_plan(&p, &mut out).unwrap();
    println!("{}", String::from_utf8(out).unwrap());
    if std::env::var("JSON").is_ok() {
        println!("{}", serde_json::to_string_pretty(&spec).unwrap());
    }
}
