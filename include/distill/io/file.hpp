// distill/io/file.hpp -- checks shared by the file readers (checkpoints, .npy arrays, training state).
//
// snippet: fragment; includes: distill/io/file.hpp
//   distill::io::require_regular_file("run/state.ckpt", "checkpoint");  // throws naming the path otherwise
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "distill/core/error.hpp"

namespace distill::io {

/// Throws distill::Error unless `file` exists and is a regular file (or a link to one): a directory, FIFO,
/// socket or device is refused by name before it is opened (reading one would block, or report a bogus size).
/// `what` names the kind of file in the message ("checkpoint", ".npy file").
inline void require_regular_file(const std::filesystem::path& file, std::string_view what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(file, ec);
  DISTILL_CHECK(fs::exists(st), "cannot open ", what, " '", file.string(), "': ",
                ec ? ec.message() : std::string("no such file"));
  DISTILL_CHECK(!fs::is_directory(st), what, " path '", file.string(), "' is a directory, not a ", what, " file");
  DISTILL_CHECK(fs::is_regular_file(st), what, " path '", file.string(),
                "' is not a regular file (it is a device, FIFO or socket); give the path of a ", what, " file");
}

}  // namespace distill::io
