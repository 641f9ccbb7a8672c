use cache_runtime::cached;

struct Connection;

#[cached]
fn load(conn: &Connection, id: u32) -> u32 {
    let _ = conn;
    id
}

fn main() {
    let _ = load(&Connection, 1);
}
