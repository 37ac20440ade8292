//! A GGUF file opened for import: metadata look-ups and tensor dequantization with errors
//! that name the file and the key or tensor. Parsing and dequantization are candle's
//! (`candle_core::quantized::gguf_file`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::Device;

/// An open GGUF file: its parsed header and a reader positioned anywhere.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    reader: BufReader<File>,
}

/// One tensor's description as stored in the file.
#[derive(Debug, Clone)]
pub struct TensorMeta {
    pub name: String,
    /// Row-major shape (GGUF stores dimensions innermost first; this is reversed).
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open GGUF file {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| {
            anyhow!(
                "{}: not a readable GGUF file (truncated or corrupt header?): {e}",
                path.display()
            )
        })?;
        let gguf = Self { path: path.to_path_buf(), content, reader };
        gguf.check_tensor_extents()?;
        Ok(gguf)
    }

    /// Every tensor's data must lie inside the file: a truncated download is reported up
    /// front, naming the first tensor that does not fit, instead of half-way through an import.
    fn check_tensor_extents(&self) -> Result<()> {
        let file_len = std::fs::metadata(&self.path)
            .with_context(|| format!("cannot stat {}", self.path.display()))?
            .len();
        let mut worst: Option<(&str, u64)> = None;
        for (name, info) in &self.content.tensor_infos {
            let elems = info.shape.elem_count();
            let block = info.ggml_dtype.block_size();
            if !elems.is_multiple_of(block) {
                bail!(
                    "{}: tensor `{name}` has {elems} elements, not a multiple of the {:?} block size {block}",
                    self.path.display(),
                    info.ggml_dtype
                );
            }
            let bytes = (elems / block * info.ggml_dtype.type_size()) as u64;
            let end = self.content.tensor_data_offset + info.offset + bytes;
            if end > file_len && worst.is_none_or(|(_, e)| end > e) {
                worst = Some((name, end));
            }
        }
        if let Some((name, end)) = worst {
            bail!(
                "{}: file is truncated: tensor `{name}` ends at byte {end} but the file has only {file_len} bytes \
                 (re-download or reinstall the package that ships it)",
                self.path.display()
            );
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| anyhow!("{}: missing GGUF metadata key `{key}`", self.path.display()))
    }

    pub fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    pub fn string(&self, key: &str) -> Result<String> {
        let v = self.get(key)?;
        v.to_string().cloned().map_err(|_| self.type_error(key, "a string", v))
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<String>> {
        if self.has(key) {
            self.string(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Any integer type, as u64 (negative values are an error).
    pub fn uint(&self, key: &str) -> Result<u64> {
        let v = self.get(key)?;
        value_to_u64(v).ok_or_else(|| self.type_error(key, "a non-negative integer", v))
    }

    pub fn opt_uint(&self, key: &str) -> Result<Option<u64>> {
        if self.has(key) {
            self.uint(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Any float type (or integer), as f64.
    pub fn float(&self, key: &str) -> Result<f64> {
        let v = self.get(key)?;
        match v {
            Value::F32(x) => Ok(*x as f64),
            Value::F64(x) => Ok(*x),
            other => value_to_u64(other)
                .map(|x| x as f64)
                .ok_or_else(|| self.type_error(key, "a number", v)),
        }
    }

    pub fn opt_float(&self, key: &str) -> Result<Option<f64>> {
        if self.has(key) {
            self.float(key).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.type_error(key, "a bool", v)),
        }
    }

    pub fn string_array(&self, key: &str) -> Result<Vec<String>> {
        let v = self.get(key)?;
        let arr = v.to_vec().map_err(|_| self.type_error(key, "an array of strings", v))?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                x.to_string().cloned().map_err(|_| {
                    anyhow!("{}: metadata `{key}`[{i}] is not a string", self.path.display())
                })
            })
            .collect()
    }

    pub fn uint_array(&self, key: &str) -> Result<Vec<u64>> {
        let v = self.get(key)?;
        let arr = v.to_vec().map_err(|_| self.type_error(key, "an array of integers", v))?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                value_to_u64(x).ok_or_else(|| {
                    anyhow!("{}: metadata `{key}`[{i}] is not an integer", self.path.display())
                })
            })
            .collect()
    }

    fn type_error(&self, key: &str, want: &str, got: &Value) -> anyhow::Error {
        anyhow!(
            "{}: metadata `{key}` should be {want}, found {:?}",
            self.path.display(),
            got.value_type()
        )
    }

    pub fn tensor_meta(&self, name: &str) -> Option<TensorMeta> {
        self.content.tensor_infos.get(name).map(|info| TensorMeta {
            name: name.to_string(),
            shape: info.shape.dims().to_vec(),
            dtype: info.ggml_dtype,
        })
    }

    pub fn tensor_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.content.tensor_infos.keys().cloned().collect();
        names.sort();
        names
    }

    /// Reads and dequantizes one tensor to f32, row-major, with its row-major shape.
    pub fn dequantize(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let path = self.path.display().to_string();
        let qt = self
            .content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| anyhow!("{path}: cannot read tensor `{name}`: {e}"))?;
        let t = qt.dequantize(&Device::Cpu).map_err(|e| {
            anyhow!("{path}: cannot dequantize tensor `{name}` ({:?}): {e}", qt.dtype())
        })?;
        let shape = t.dims().to_vec();
        let data = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| anyhow!("{path}: tensor `{name}`: {e}"))?;
        Ok((shape, data))
    }
}

fn value_to_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(x) => Some(x as u64),
        Value::U16(x) => Some(x as u64),
        Value::U32(x) => Some(x as u64),
        Value::U64(x) => Some(x),
        Value::I8(x) => u64::try_from(x).ok(),
        Value::I16(x) => u64::try_from(x).ok(),
        Value::I32(x) => u64::try_from(x).ok(),
        Value::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}
