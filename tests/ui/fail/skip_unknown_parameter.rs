use cache_runtime::cached;

#[cached(skip(conn))]
fn load(connection: &str, id: u32) -> u32 {
    let _ = connection;
    id
}

fn main() {
    let _ = load("db", 1);
}
