use cache_runtime::cached;

fn make_key(id: &u32) -> String {
    format!("user:{id}")
}

#[cached(key = "fixed", key_builder = make_key)]
fn load(id: u32) -> u32 {
    id
}

fn main() {
    let _ = load(1);
}
