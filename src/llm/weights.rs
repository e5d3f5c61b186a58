//! How weights are held in memory: each tensor's in-memory format under a [`WeightFormat`],
//! and a reader that converts tensors one at a time while candle loads them.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use candle_core::Device;
use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::{GgmlDType, QTensor};

use super::WeightFormat;

fn is_float(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// In-memory format for one tensor under `format`.
fn target_dtype(format: WeightFormat, name: &str, stored: GgmlDType, dims: &[usize]) -> GgmlDType {
    // Norm weights and other vectors are tiny and already float; the embedding is dequantised
    // at load whatever its format.
    if is_float(stored) || dims.len() < 2 || name == "token_embd.weight" {
        return stored;
    }
    let q8_ok = dims
        .last()
        .is_some_and(|k| k.is_multiple_of(GgmlDType::Q8_0.block_size()));
    let to_q8 = if q8_ok {
        GgmlDType::Q8_0
    } else {
        GgmlDType::F32
    };
    match format {
        // The output projection is held in the project's own 8-bit format under every
        // format (see `model`): read as stored, so it is quantised once.
        _ if name == "output.weight" => stored,
        WeightFormat::AsStored => stored,
        WeightFormat::F32 => GgmlDType::F32,
        WeightFormat::Q8_0 if stored == GgmlDType::Q8_0 => stored,
        WeightFormat::Q8_0 => to_q8,
        // Decoding reads the stored blocks; the model dequantises a copy for prefill.
        WeightFormat::Fast | WeightFormat::FastF32 => stored,
    }
}

/// A virtual GGUF tensor-data section with every tensor already converted to its in-memory
/// format. The model reads each tensor exactly once, so tensors are converted one at
/// a time on demand: peak memory stays at the converted model plus one tensor.
pub(super) struct ConvertingReader<R> {
    source: R,
    source_offset: u64,
    /// (virtual start, virtual length, original info, target dtype), sorted by start.
    entries: Vec<(u64, u64, TensorInfo, GgmlDType)>,
    total: u64,
    pos: u64,
    cached: Option<(usize, Vec<u8>)>,
    device: Device,
}

impl<R: Read + Seek> ConvertingReader<R> {
    /// Returns the content to hand to `from_gguf` (same metadata, tensors at virtual offsets
    /// in their target format) and the reader that serves them.
    pub(super) fn new(
        content: Content,
        source: R,
        format: WeightFormat,
        device: Device,
    ) -> (Content, Self) {
        let Content {
            magic,
            metadata,
            tensor_infos,
            tensor_data_offset,
        } = content;
        let mut infos: Vec<(String, TensorInfo)> = tensor_infos.into_iter().collect();
        // A tied output projection is stored once as the embedding; giving it its own entry lets
        // the two take different formats (embedding rows are gathered, never multiplied).
        if !infos.iter().any(|(n, _)| n == "output.weight")
            && let Some((_, embd)) = infos.iter().find(|(n, _)| n == "token_embd.weight")
        {
            let output = TensorInfo {
                ggml_dtype: embd.ggml_dtype,
                shape: embd.shape.clone(),
                offset: embd.offset,
            };
            infos.push(("output.weight".to_string(), output));
        }
        infos.sort_by_key(|(_, info)| info.offset);

        let mut virtual_infos = HashMap::with_capacity(infos.len());
        let mut entries = Vec::with_capacity(infos.len());
        let mut total = 0u64;
        for (name, info) in infos {
            let dims = info.shape.dims().to_vec();
            let target = target_dtype(format, &name, info.ggml_dtype, &dims);
            let elems = info.shape.elem_count() as u64;
            let len = elems / target.block_size() as u64 * target.type_size() as u64;
            virtual_infos.insert(
                name,
                TensorInfo {
                    ggml_dtype: target,
                    shape: info.shape.clone(),
                    offset: total,
                },
            );
            entries.push((total, len, info, target));
            total += len;
        }
        let content = Content {
            magic,
            metadata,
            tensor_infos: virtual_infos,
            tensor_data_offset: 0,
        };
        let reader = Self {
            source,
            source_offset: tensor_data_offset,
            entries,
            total,
            pos: 0,
            cached: None,
            device,
        };
        (content, reader)
    }

    fn convert(&mut self, index: usize) -> candle_core::Result<Vec<u8>> {
        let (_, _, info, target) = &self.entries[index];
        let target = *target;
        let stored = info.read(&mut self.source, self.source_offset, &self.device)?;
        if stored.dtype() == target {
            return Ok(stored.data()?.into_owned());
        }
        let dense = stored.dequantize(&self.device)?;
        drop(stored);
        match target {
            GgmlDType::F32 => {
                let values = dense.flatten_all()?.to_vec1::<f32>()?;
                Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            other => Ok(QTensor::quantize(&dense, other)?.data()?.into_owned()),
        }
    }
}

impl<R: Read + Seek> Read for ConvertingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.pos >= self.total {
            return Ok(0);
        }
        let index = self
            .entries
            .partition_point(|(start, _, _, _)| *start <= self.pos)
            .saturating_sub(1);
        let Some(&(start, len, _, _)) = self.entries.get(index) else {
            return Ok(0);
        };
        if self.pos >= start + len {
            return Ok(0);
        }
        if self.cached.as_ref().is_none_or(|(i, _)| *i != index) {
            // Drop the previous tensor first so two converted tensors are never held at once.
            self.cached = None;
            let bytes = self.convert(index).map_err(std::io::Error::other)?;
            if bytes.len() as u64 != len {
                return Err(std::io::Error::other(format!(
                    "converted tensor has {} bytes, expected {len}",
                    bytes.len()
                )));
            }
            self.cached = Some((index, bytes));
        }
        let Some((_, bytes)) = &self.cached else {
            return Ok(0);
        };
        // Bounded by `len`, which came from a usize byte count.
        let from = (self.pos - start) as usize;
        let n = buf.len().min(bytes.len() - from);
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        self.pos += n as u64;
        if from + n == bytes.len() {
            // Each tensor is read once: free it as soon as it has been handed over.
            self.cached = None;
        }
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for ConvertingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.total.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| std::io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}
