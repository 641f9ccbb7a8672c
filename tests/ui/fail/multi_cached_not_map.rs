use cache_runtime::multi_cached;

#[multi_cached(keys_from_attr = "ids")]
fn load(ids: Vec<u32>) -> Vec<u32> {
    ids
}

fn main() {
    let _ = load(vec![1]);
}
