use crate::TranspileError;
pub fn check_depth(_source: &str, _max_depth: usize) -> Result<(), TranspileError> {
    Ok(())
}
