use cache_runtime::cached;

#[cached(unknown = 1, ttl = 0, skip(nope), noself)]
fn load(id: u32) -> u32 {
    id
}

fn main() {
    let _ = load(1);
}
