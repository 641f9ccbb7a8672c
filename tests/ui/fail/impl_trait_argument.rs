use cache_runtime::cached;

#[cached]
fn render(value: impl std::fmt::Display) -> String {
    value.to_string()
}

fn main() {
    let _ = render(1);
}
