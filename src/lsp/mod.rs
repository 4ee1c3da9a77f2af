pub fn run_stdio() -> Result<(), String> {
    Err("todo".into())
}
