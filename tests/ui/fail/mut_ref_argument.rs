use cache_runtime::cached;

#[cached]
fn load(log: &mut Vec<String>, id: u32) -> u32 {
    log.push(format!("load {id}"));
    id
}

fn main() {
    let _ = load(&mut Vec::new(), 1);
}
