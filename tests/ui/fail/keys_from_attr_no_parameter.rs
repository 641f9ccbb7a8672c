use std::collections::HashMap;

use cache_runtime::multi_cached;

#[multi_cached(keys_from_attr = "keys")]
fn load(ids: Vec<u32>) -> HashMap<u32, u32> {
    ids.into_iter().map(|id| (id, id)).collect()
}

fn main() {
    let _ = load(vec![1]);
}
