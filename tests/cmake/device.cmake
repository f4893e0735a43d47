# `--device cuda` end to end (docs/cuda.md): each example trains 2 steps on the Cuda device and on the Cpu device
# with the same options, and tests/device/device_parity.py requires the loss, the final weights and the test
# embeddings to agree. The runs use SGD (--optim sgd, lr 0.05): Adam turns the rounding noise of gradients that are
# exactly zero, or nearly so by cancellation, into lr-sized steps whose sign differs between the devices (the same
# reason test_cuda_disco uses SGD; test_cuda_train compares Adam itself with those parameters frozen). In the emulation build (the default with tests) the Cuda
# device is the SIMT emulator; in a DISTILL_CUDA=ON build it is the GPU, and the tests skip (77) without one.
if(NOT DISTILL_BUILD_EXAMPLES)
  return()
endif()
# --device spelled wrong: a usage error naming the option, in every build.
foreach(prog dcrls disco mcl)
  add_test(NAME ${prog}_device_bad_spelling COMMAND ${prog} --device gpu)
  set_tests_properties(${prog}_device_bad_spelling PROPERTIES
                       PASS_REGULAR_EXPRESSION "--device: 'gpu' is not a device; expected cpu, cuda or cuda:N" TIMEOUT 60)
endforeach()
if(NOT (TARGET distill_cuda OR TARGET distill_cuda_emu))
  return()
endif()
if(NOT TARGET distill_cuda)
  # The emulator has one device, cuda:0: cuda:1 is refused at once, naming the device and what is present; L-MCL on
  # the Cuda device is refused before any data is read.
  add_test(NAME dcrls_device_absent COMMAND dcrls --device cuda:1 --dataset no-such-dataset)
  set_tests_properties(dcrls_device_absent PROPERTIES
                       PASS_REGULAR_EXPRESSION "device cuda:1 is absent: 1 CUDA device\\(s\\) present \\(cuda:0\\)"
                       TIMEOUT 60)
  add_test(NAME mcl_device_layerwise_refused COMMAND mcl --device cuda --layerwise --dataset no-such-dataset)
  set_tests_properties(mcl_device_layerwise_refused PROPERTIES
                       PASS_REGULAR_EXPRESSION "--layerwise \\(L-MCL\\) runs on the Cpu device only" TIMEOUT 60)
endif()
find_package(Python3 COMPONENTS Interpreter)
add_executable(compare_outputs ${CMAKE_CURRENT_SOURCE_DIR}/device/compare_outputs.cpp)
target_link_libraries(compare_outputs PRIVATE ${DISTILL_LIB} distill_build_flags)

# A tiny set cut from the bundled SonyAIBORobotSurface1 (length 70): 8 training and 8 test series, so that two
# steps of 4 series and the evaluation take seconds on the emulator.
set(dev_data ${CMAKE_CURRENT_BINARY_DIR}/device/TinySony)
foreach(split TRAIN TEST)
  file(STRINGS ${PROJECT_SOURCE_DIR}/data/ucr/SonyAIBORobotSurface1/SonyAIBORobotSurface1_${split}.tsv rows
       LIMIT_COUNT 8)
  list(JOIN rows "\n" rows)
  file(WRITE ${dev_data}/TinySony_${split}.tsv "${rows}\n")
endforeach()

if(Python3_FOUND)
  set(dev_common --epochs 1 --probe-steps 20 --threads 2 --quiet --dataset ${dev_data} --optim sgd
      --lr 0.05)
  set(dev_parity ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/device/device_parity.py
      --compare $<TARGET_FILE:compare_outputs>)
  add_test(NAME dcrls_device_parity
           COMMAND ${dev_parity} --binary $<TARGET_FILE:dcrls> --work ${CMAKE_CURRENT_BINARY_DIR}/device/dcrls
                   --checkpoints encoder.ckpt -- ${dev_common} --batch 4)
  # disco: first the MoCo-v2 teacher (--variant teacher, one step of 8 series: its cpu net.ckpt is then the teacher of
  # the next test), then the DisCo student distilled from that same frozen teacher file on both devices (in-batch
  # negatives, N < 64). One teacher for both devices: a teacher trained on each would differ by rounding, which
  # the distillation term passes on to every student weight.
  add_test(NAME disco_teacher_device_parity
           COMMAND ${dev_parity} --binary $<TARGET_FILE:disco> --work ${CMAKE_CURRENT_BINARY_DIR}/device/disco_teacher
                   --checkpoints net.ckpt -- ${dev_common} --batch 8 --variant teacher
                   --teacher-cache ${CMAKE_CURRENT_BINARY_DIR}/device/disco_teacher/cache)
  set_tests_properties(disco_teacher_device_parity PROPERTIES FIXTURES_SETUP disco_device_teacher)
  add_test(NAME disco_device_parity
           COMMAND ${dev_parity} --binary $<TARGET_FILE:disco> --work ${CMAKE_CURRENT_BINARY_DIR}/device/disco
                   --checkpoints encoder.ckpt,net.ckpt -- ${dev_common} --batch 4 --variant disco
                   --teacher ${CMAKE_CURRENT_BINARY_DIR}/device/disco_teacher/cpu/net.ckpt)
  set_tests_properties(disco_device_parity PROPERTIES FIXTURES_REQUIRED disco_device_teacher)
  # mcl: MCL with a cohort of two (L-MCL and --self-supervised are Cpu only: their column ops have no CUDA kernels).
  add_test(NAME mcl_device_parity
           COMMAND ${dev_parity} --binary $<TARGET_FILE:mcl> --work ${CMAKE_CURRENT_BINARY_DIR}/device/mcl
                   --checkpoints cohort.ckpt --arrays test_logits_net0.npy,test_logits_net1.npy --
                   --epochs 1 --batch 4 --threads 2 --quiet --dataset ${dev_data} --optim sgd --lr 0.05 --cohort 2
                   --width 16)
  set_tests_properties(dcrls_device_parity disco_teacher_device_parity disco_device_parity mcl_device_parity PROPERTIES
                       SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
