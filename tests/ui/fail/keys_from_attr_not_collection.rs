use std::collections::HashMap;

use cache_runtime::multi_cached;

#[multi_cached(keys_from_attr = "id")]
fn load(id: u32) -> HashMap<u32, u32> {
    HashMap::from([(id, id)])
}

fn main() {
    let _ = load(1);
}
